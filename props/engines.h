// The engine props checks, behind one interface, so the properties run on any engine: ours
// (invariant or eigen backend, with injectable faults) or an outside one. The operations every
// engine offers are what the properties need: chunks appended to several sequences in one call,
// batched decode, truncate, fork, reset and full recompute of a token list. The rest are
// capabilities an engine may lack; a property that needs one the engine lacks is skipped, and
// the run names the property and the capability. No engine is named here: each declares itself
// in its own file (props/engine_registry.h).
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/trace.h"

namespace miniinfer::props {

enum class Capability {
  KvRows,         // K and V rows per layer, head and slot, next to full recompute's
  Trace,          // a per-(layer, head) trace of a forward call for the reporter
  Faults,         // the fault catalogue can be injected
  Architectures,  // an engine can be built for a random architecture (p10)
  PrefixCache,    // submit() reuses rows of earlier prompts and says how many tokens (p13)
  Threads,        // its forward calls run on a thread count props sets (set_threads)
  KvQuant,        // its cache rounds K and V rows through a quantizer, kv_quant() says how (p15)
  Window,         // a sliding-window cache with attention sinks, window() says its size (p16)
};
const char* to_string(Capability c);

// An engine that crashed during a call (a process engine exited, was killed, or answered
// `internal`): a finding of the case that ran it, not the end of the run. When this is thrown
// the engine is whole again (restarted), so the same case can run again on a fresh engine.
class EngineCrashed : public Error {
 public:
  using Error::Error;
};

// What submit() gave: the prompt's last logits and how many of its tokens came from the
// prefix cache instead of being computed.
struct Submitted {
  std::vector<float> logits;  // (V)
  int reused = 0;
};

class EngineUnderTest {
 public:
  virtual ~EngineUnderTest() = default;

  virtual std::string name() const = 0;              // as --engine names it
  virtual nlohmann::json settings() const = 0;       // recorded in every counterexample
  virtual std::string describe() const = 0;          // one line for the run's banner
  virtual bool has(Capability c) const = 0;
  virtual const Config& config() const = 0;          // the model's shape: layers, heads, widths

  virtual int vocab_size() const = 0;
  virtual int batch() const = 0;     // sequences
  virtual int capacity() const = 0;  // positions per sequence
  virtual int max_seq_len() const = 0;  // longest full recompute
  virtual int cursor(int seq) const = 0;

  // Several sequences in one call, each chunk at its own cursor: the last row of each chunk,
  // (chunks.size(), V).
  virtual void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) = 0;
  // One token per listed sequence in one call: (seqs.size(), V).
  virtual void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) = 0;
  // One chunk on one sequence: (V), or (n, V) if all_rows.
  virtual std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows = false) = 0;
  // Full recompute of `tokens` at positions 0..T-1 in one pass: (V), or (T, V) if all_rows.
  virtual std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows = false) = 0;
  void forward_uncached(std::span<const int> tokens, std::span<float> logits);  // (V), for generate

  virtual void truncate(int seq, int p) = 0;
  virtual void fork(int src, int dst, int prefix_len) = 0;
  virtual void reset() = 0;
  virtual void reset(int seq) = 0;
  // Everything a case could read from an earlier one made unreadable: cursors to 0 and, where
  // the engine lets us, every cache slot overwritten (scenario.h, kPoison).
  virtual void clean_slate() = 0;

  // generate() with `options` (cache on or off), the same loops for every engine. An engine
  // that cannot trace every call of a run refuses options.trace with an Error.
  virtual GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& options) = 0;

  // The dtype its K/V cache stores rows in ("f32", "f16", "bf16"): a difference in a value read
  // from the cache within one ULP of that dtype is its rounding, not a wrong value (verdict.h).
  virtual std::string kv_dtype() const { return "f32"; }

  // Capability KvQuant: how its cache stores K and V rows. Full recompute rounds every row through
  // the same quantizer at the same boundaries (docs/quantized-cache.md), so cached and uncached
  // stay comparable; a property aims its chunk boundaries at `group` and `residual`.
  struct KvQuantInfo {
    std::string format = "f32";  // "f32", "bf16", "int8", or an outside engine's ("q8_0", "q4_0")
    int group = 0;               // consecutive floats of a row that share one scale (0: no scale)
    int residual = 0;            // the newest rows kept in float32 until a flush quantizes them (0: none)
  };
  virtual KvQuantInfo kv_quant() const { return {}; }
  // Capability Window: a query at position p attends to the first `sinks` positions and the
  // last `window - sinks` positions up to p; full recompute applies the same mask. 0: no window.
  struct WindowInfo {
    int window = 0, sinks = 0;
    int rollback = 0;  // rows a truncate (or rollback) may drop below the cursor at most; 0: any
  };
  virtual WindowInfo window() const { return {}; }

  // Speculative decoding's two cache operations, which every engine offers. verify: `tokens`
  // (the last accepted token, then the k draft tokens) appended at the cursor in one call, every
  // row's logits (k + 1, V). rollback: keep the first `keep` tokens of `seq`, dropping the
  // rejected ones. By default forward_cached(all_rows) and truncate; an engine with its own
  // verify path (its own positions, its own rollback) overrides them.
  virtual std::vector<float> verify(int seq, std::span<const int> tokens) { return forward_cached(seq, tokens, true); }
  virtual void rollback(int seq, int keep) { truncate(seq, keep); }

  // Capability Threads: the threads its forward calls use from the next call on (at least 1),
  // and the count it runs with now. Without the capability set_threads does nothing.
  virtual void set_threads(int /*threads*/) {}
  virtual int threads() const { return 1; }

  // The active fault (Fault::None on an engine without the capability).
  virtual Fault fault() const { return Fault::None; }
  // Why it lacks capability `c`, when there is more to say than that it does: a skip line ends
  // with it ("" by default).
  virtual std::string lacks_why(Capability /*c*/) const { return ""; }

  // Capability Trace: records the nth forward call from now (0: the next one, counting
  // generate()'s calls too) into `trace`: call = trace->calls, then ++trace->calls. Each row
  // is labelled with its sequence and absolute position (full recompute's rows: trace->seq,
  // positions 0..T-1); rows outside trace->positions (when not empty) are left out. False:
  // the engine cannot trace.
  virtual bool trace_call(Trace* /*trace*/, int /*nth*/) { return false; }
  // Capability KvRows: the K and V rows the cache holds for `seq`, slots 0..cursor(seq)-1, as
  // (L, H, T = cursor, d_head); and full recompute's rows for `tokens` (a forward call).
  virtual std::optional<KvRows> cache_rows(int /*seq*/) { return std::nullopt; }
  virtual std::optional<KvRows> recompute_rows(std::span<const int> /*tokens*/) { return std::nullopt; }
  // Capability KvRows: every K and V float the cache holds for `seq`, past the cursor too (p11:
  // "this call left the sequence unchanged"); empty: cache_rows' rows stand in for them.
  virtual std::vector<float> cache_slots(int /*seq*/) { return {}; }

  // A new request on `seq` starts where generate() starts one: on an empty sequence (ours asks
  // the active fault, so stale-cache keeps the old rows there too).
  virtual void start_request(int seq) { reset(seq); }

  // Serving. A new request on `seq` with `prompt`: the sequence then holds exactly the prompt.
  // An engine with Capability PrefixCache may reuse rows an earlier prompt computed (a prefix
  // hit) and says how many tokens it reused; without it, start_request and one chunk, reused 0.
  virtual Submitted submit(int seq, std::span<const int> prompt) {
    start_request(seq);
    return {forward_cached(seq, prompt, false), 0};
  }
  // Capability PrefixCache: the granularity of reuse (a hit reuses a multiple of it), in tokens.
  virtual int prefix_block() const { return 0; }
  // `seq` gives up its rows; by default a reset.
  virtual void free(int seq) { reset(seq); }
  // Capability PrefixCache, for p11's checks and its reports: the pool's own consistency check
  // ("" or the first refcount or free-list inconsistency), where a sequence's slot lives, its
  // block table (physical blocks by logical block), whether it gave up its blocks (preempted:
  // tokens kept, recomputed on next use), and what the pool has done since the last reset.
  virtual std::string cache_check() { return ""; }
  virtual BlockSlot locate(int /*seq*/, int /*slot*/) { return {}; }
  virtual std::vector<int> block_table(int /*seq*/) { return {}; }
  virtual bool preempted(int /*seq*/) { return false; }
  virtual PagedStats serving_stats() { return {}; }
  // The slots of its block pool, for reports; 0: it shows none (llama.cpp's cells, a process).
  virtual int pool_slots() const { return 0; }
};

// A path as case files and reports keep it: relative to the source tree when it lies inside it
// (so a case or report made in one checkout reads the same in another), else absolute; and a
// path so kept back to a path to open.
std::string source_relative_path(const std::string& path);
std::string open_path(const std::string& stored);

}  // namespace miniinfer::props
