// --kv-cache, --block-size and --pool-blocks, shared by minigpt generate and minigpt serve; and
// --threads, shared by every command that runs the engine.
#pragma once
#include "base/error.h"
#include "base/threads.h"
#include "cli/command.h"
#include "engine/engine.h"

namespace miniinfer::cli {

inline constexpr const char* kCacheFlagsHelp =
    "  --kv-cache LAYOUT    contiguous (default): a slab per sequence; paged: blocks of a shared\n"
    "                       pool with block tables, prefix caching and copy-on-write (same bytes)\n"
    "  --block-size N       paged: slots per block, a power of two dividing the capacity (default 16)\n"
    "  --pool-blocks N      paged: blocks in the pool; 0 = batch * capacity / block size (default 0)\n";

struct CacheFlags {
  KvLayout layout = KvLayout::Contiguous;
  PagedOptions paged;
};

// The flags' values, each refused in one line naming the flag.
inline CacheFlags cache_flags(const Args& args) {
  CacheFlags f;
  const std::string layout = args.get("kv-cache", "contiguous");
  try {
    f.layout = layout_from_name(layout);
  } catch (const Error& e) {
    fail("flag --kv-cache: {}", e.what());
  }
  for (const char* flag : {"block-size", "pool-blocks"})
    if (args.has(flag) && f.layout != KvLayout::Paged) fail("flag --{}: only with --kv-cache paged", flag);
  f.paged.block_size = args.get_int("block-size", f.paged.block_size);
  if (f.paged.block_size < 1 || (f.paged.block_size & (f.paged.block_size - 1)) != 0)
    fail("flag --block-size: {} is not a power of two", f.paged.block_size);
  f.paged.pool_blocks = args.get_int("pool-blocks", 0);
  if (f.paged.pool_blocks < 0) fail("flag --pool-blocks: must be >= 0, got {}", f.paged.pool_blocks);
  return f;
}

inline constexpr const char* kThreadsFlagHelp =
    "  --threads N          worker threads of the forward pass (default: MINIINFER_THREADS, else\n"
    "                       the machine's cores); every count gives the same bytes\n";

// --threads, or MINIINFER_THREADS, or the cores (resolve_threads): refused in one line before
// any model is read.
inline int threads_flag(const Args& args) {
  const int n = args.get_int("threads", 0);
  if (args.has("threads") && (n < 1 || n > kMaxThreads))
    fail("flag --threads: {} is not a thread count (1 to {})", n, kMaxThreads);
  return resolve_threads(n);
}

inline constexpr const char* kWindowFlagsHelp =
    "  --window W           a sliding window: each query reads the first S positions (--sinks)\n"
    "                       and the newest W - S; cached and uncached alike (docs/sliding-window.md)\n"
    "  --sinks S            the window's attention sinks, 0..W-1 (default 0; needs --window)\n";

struct WindowFlags {
  int window = 0, sinks = 0;
};

// --window and --sinks, refused in one line naming the flag before any model is read (a window
// larger than the model's max_seq_len is the engine's to refuse, once the model is known).
inline WindowFlags window_flags(const Args& args) {
  WindowFlags f{args.get_int("window", 0), args.get_int("sinks", 0)};
  if (f.window < 0) fail("flag --window: {} is negative (0 = no window)", f.window);
  if (f.sinks < 0) fail("flag --sinks: {} is negative", f.sinks);
  if (args.has("sinks") && f.window == 0) fail("flag --sinks: {} sinks need a window (--window W, W > {})", f.sinks, f.sinks);
  if (f.window > 0 && f.sinks >= f.window)
    fail("flag --window: {} must be larger than the sink count {} (--sinks)", f.window, f.sinks);
  return f;
}

}  // namespace miniinfer::cli
