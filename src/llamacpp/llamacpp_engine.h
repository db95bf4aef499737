// LlamaCpp: llama.cpp running a MiniGPT GGUF (gguf_export.h), behind the operations our Engine
// has (engine/engine.h): sequences with cursors, chunks appended to several sequences in one
// llama_batch, decode, truncate (llama_memory_seq_rm), fork (llama_memory_seq_cp), reset, and
// full recompute. In llama.cpp there is no separate uncached path: recompute is a fresh memory
// (a second llama_context, cleared) and one batch over the whole sequence. Not byte-identical
// to our engine, and not to itself across batch shapes; see docs/benchmarks.md and
// conformance_test.cpp for how far it is from ours.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"  // Chunk

struct llama_model;
struct llama_context;
struct llama_batch;
struct ggml_tensor;
struct ggml_threadpool;

namespace miniinfer {

// The K/V cache's ggml type. Q8_0 and Q4_0 are ggml's block formats (32 floats share one F16
// scale); the pinned llama.cpp stores a quantized V cache only with flash attention.
enum class KvType { F16, F32, Q8_0, Q4_0 };
const char* to_string(KvType type);

struct LlamaCppOptions {
  int threads = 1;
  KvType kv_type = KvType::F16;  // llama.cpp's default
  bool flash_attn = false;       // off: the plain softmax path (on CPU the FA kernel rounds Q to F16)
  int n_seq = 1;                 // sequences the cache holds (our EngineOptions::batch)
  int capacity = 0;              // positions per sequence; 0 = the model's context_length
  int n_batch = 0;               // most tokens one llama_decode takes; 0 = n_seq * capacity
  int n_ubatch = 0;              // rows of one physical pass; 0 = n_batch
  // Threads that wait for work: -1 = llama.cpp's own threadpool (it spins between graph ops,
  // polling level 50); 0..100 = a threadpool of ours at that polling level (0: they sleep,
  // which is what a loaded machine needs: a spinning thread holds the core its peer waits for).
  int poll = -1;
  // Installs the eval callback that set_trace needs. Off, llama.cpp computes each graph in
  // one piece instead of node range by node range: about 15% faster per decode here.
  bool eval_callback = true;
};

// One per-layer tensor llama.cpp computed, copied out by its eval callback (cb_eval). Names are
// llama.cpp's graph names: Qcur-l, Kcur-l, Vcur-l (each appears more than once per layer:
// after the matmul, after the bias, and Qcur/Kcur after RoPE; the last one is the final value),
// kq_soft_max-l (the attention probabilities; absent with flash attention), kqv_out-l (the
// concatenated head outputs), l_out-l (the residual stream after the layer), and around them
// attn_norm-l, ffn_norm-l (the two LayerNorms' outputs) and ffn_out-l (the MLP's output).
struct LayerTensor {
  std::string name;
  std::array<int64_t, 4> ne{};  // ggml order: ne[0] is the fastest-varying dimension
  std::vector<float> data;      // contiguous in ne order, converted to float
};
struct LlamaTrace {
  std::vector<LayerTensor> tensors;  // in computation order, over every llama_decode call
  const LayerTensor* last(const std::string& name) const;  // nullptr if absent
  void clear() { tensors.clear(); }
};

// LlamaCpp's calls, as a program that loads llama.cpp at run time holds them
// (llamacpp/module.h): through this interface it calls into the module and links none of it.
class LlamaCppCalls {
 public:
  virtual ~LlamaCppCalls() = default;
  virtual int vocab_size() const = 0;
  virtual int n_seq() const = 0;
  virtual int capacity() const = 0;
  virtual int cursor(int seq) const = 0;
  virtual std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows = false) = 0;
  virtual std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows = false) = 0;
  virtual void forward_batch(std::span<const Chunk> chunks, std::span<float> logits,
                             bool all_rows = false) = 0;
  virtual void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) = 0;
  virtual void reset() = 0;
  virtual void reset(int seq) = 0;
  virtual void truncate(int seq, int p) = 0;
  virtual void fork(int src, int dst, int prefix_len) = 0;
  virtual void remove(int seq, int p0, int p1) = 0;
  virtual void set_trace(LlamaTrace* trace) = 0;
  // The threads of every later call (llama_set_n_threads, and a threadpool of that size).
  virtual void set_threads(int threads) = 0;
};

class LlamaCpp final : public LlamaCppCalls {
 public:
  // Loads the GGUF; throws Error naming the file (with llama.cpp's last log line) on failure.
  explicit LlamaCpp(const std::string& gguf_path, LlamaCppOptions options = {});
  ~LlamaCpp() override;
  LlamaCpp(const LlamaCpp&) = delete;
  LlamaCpp& operator=(const LlamaCpp&) = delete;

  const LlamaCppOptions& options() const { return options_; }
  int vocab_size() const override { return vocab_size_; }
  int n_seq() const override { return options_.n_seq; }
  int capacity() const override { return options_.capacity; }
  int cursor(int seq) const override;
  void set_threads(int threads) override;

  // Full recompute: a fresh memory and one batch at positions 0..T-1. logits: (T, V) if
  // all_rows, else (V) for the last position.
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows = false) override;
  // Appends `tokens` to sequence `seq` at its cursor: (V) or, if all_rows, (n, V).
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows = false) override;
  // Several sequences in one llama_batch, each chunk at its own cursor. logits: the last row
  // of each chunk, (chunks.size(), V); or every row of every chunk, in order, if all_rows.
  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits, bool all_rows = false) override;
  // One token per listed sequence, one llama_batch. logits: (seqs.size(), V).
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override;

  void reset() override;                   // every sequence empty
  void reset(int seq) override;            // one sequence empty
  void truncate(int seq, int p) override;  // keep positions 0..p-1 (llama_memory_seq_rm)
  void fork(int src, int dst,
            int prefix_len) override;  // dst = src's first prefix_len positions (llama_memory_seq_cp)
  // Frees positions p0..p1-1 of `seq` (llama_memory_seq_rm of a range) and leaves its cursor:
  // holes in a sequence that is never appended to again (props' ballast, which fragments the
  // cache before a case). The freed cells are the first a later call fills.
  void remove(int seq, int p0, int p1) override;

  // While set, every llama_decode appends the per-layer tensors to `trace` (nullptr: off).
  // Needs options().eval_callback.
  void set_trace(LlamaTrace* trace) override;

 private:
  static bool eval_callback(ggml_tensor* t, bool ask, void* self);
  llama_context* make_context(int n_seq, int n_ctx, int n_batch, int n_ubatch);
  void attach_threadpool();  // options_.poll >= 0: (re)creates ours and attaches it
  void free_threadpool();
  void release();  // frees whatever was made, in reverse order
  void check_seq(int seq, const char* what) const;
  void check_tokens(std::span<const int> tokens) const;
  // Fills batch_ with the chunks, decodes on `ctx`, copies the requested rows' logits.
  void run(llama_context* ctx, std::span<const Chunk> chunks, std::span<const int> pos0, float* logits,
           bool all_rows);

  LlamaCppOptions options_;
  std::string path_;
  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;           // the cached path's memory: n_seq sequences
  llama_context* recompute_ = nullptr;     // full recompute: one sequence, cleared before each call
  std::unique_ptr<llama_batch> batch_;     // (n_batch) tokens, reused by every call
  ggml_threadpool* threadpool_ = nullptr;  // ours, if options_.poll >= 0
  int vocab_size_ = 0;
  std::vector<int> cursors_;  // (n_seq) positions held per sequence
  LlamaTrace* trace_ = nullptr;
};

}  // namespace miniinfer
