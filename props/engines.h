// The engine props checks, behind one interface, so the properties run on any engine: ours
// (invariant or eigen backend, with injectable faults) or an outside one (llama.cpp). The
// operations every engine offers are what the properties need: chunks appended to several
// sequences in one call, batched decode, truncate, fork, reset and full recompute of a token
// list. The rest are capabilities an engine may lack; a property that needs one the engine
// lacks is skipped, and the run names the property and the capability.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/generate.h"

namespace miniinfer {
class LlamaCpp;
struct LlamaTrace;
}  // namespace miniinfer

namespace miniinfer::props {

enum class Capability {
  KvRows,         // K and V rows per layer, head and slot, next to full recompute's
  Trace,          // our per-(layer, head) trace for the reporter
  Faults,         // the fault catalogue can be injected
  Architectures,  // an engine can be built for a random architecture (p10)
};
const char* to_string(Capability c);

class EngineUnderTest {
 public:
  virtual ~EngineUnderTest() = default;

  virtual std::string name() const = 0;              // "miniinfer", "llamacpp"
  virtual nlohmann::json settings() const = 0;       // recorded in every counterexample
  virtual std::string describe() const = 0;          // one line for the run's banner
  virtual bool has(Capability c) const = 0;

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

  // generate() with `options` (cache on or off), the same loops for every engine.
  virtual GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& options) = 0;

  // The active fault (Fault::None on an engine without the capability).
  virtual Fault fault() const { return Fault::None; }

  // Capabilities KvRows, Trace, Faults, Architectures: our Engine underneath, or nullptr.
  virtual Engine* native() { return nullptr; }
  // An outside engine's own tracing (llama.cpp's eval callback): records the tensors of the
  // nth forward call from now (0: the next one) into `trace`. False: the engine cannot.
  virtual bool trace_call(LlamaTrace* /*trace*/, int /*nth*/) { return false; }
};

// Ours: an Engine the adapter borrows (the context owns it), with the run's backend and fault.
std::unique_ptr<EngineUnderTest> wrap_engine(Engine& engine, Backend backend, Fault fault);

// llama.cpp, when the build has it (otherwise: an Error saying so).
struct LlamaSettings {
  std::string gguf;         // relative to the source tree when it lies inside it, else absolute
  std::string gguf_sha256;  // of that file, so a replay runs on the same one
  std::string kv = "f16";  // f16 | f32
  int threads = 1;
  bool flash = false;
  int ubatch = 0;          // 0 = llama.cpp's n_ubatch = n_batch
  nlohmann::json to_json() const;
  static LlamaSettings from_json(const nlohmann::json& j);  // throws Error naming the field
};
// A path as case files and reports keep it: relative to the source tree when it lies inside it
// (so a case or report made in one checkout reads the same in another), else absolute; and a
// GGUF path so kept back to a path to open.
std::string source_relative_path(const std::string& path);
std::string gguf_open_path(const std::string& stored);
bool have_llamacpp();
// Loads the GGUF and checks that it is `model`'s: its logits for a short token list must lie
// within the derived bound of ours (src/llamacpp/tolerance.h), or an Error says they do not.
std::unique_ptr<EngineUnderTest> make_llamacpp(const LlamaSettings& settings, const Model& model, int batch,
                                               int capacity);

}  // namespace miniinfer::props
