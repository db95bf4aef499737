// The inference engine: a Model re-laid for the kernels, a KV cache for B sequences, and all
// scratch preallocated. One forward routine serves both paths: full recompute (all T rows at
// positions 0..T-1 in one pass, into scratch K/V that nothing reads after the call) and the
// cached path (a chunk per sequence appended at its cursor: prefill, decode and resume are the
// same code with different row counts). Byte equality comes from the kernels (kernels.h).
#pragma once
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "base/thread_pool.h"
#include "engine/faults.h"
#include "engine/kernels.h"
#include "engine/kv_cache.h"
#include "engine/paged_cache.h"
#include "engine/quant_cache.h"
#include "engine/trace.h"
#include "model/model.h"

namespace miniinfer {

// invariant: our batch-invariant kernels. eigen: Eigen's X*W for every projection, the MLP and
// the head (attention and the rest unchanged); agrees within tolerance, not bitwise.
enum class Backend { Invariant, Eigen };
const char* to_string(Backend backend);
Backend backend_from_name(std::string_view name);  // throws Error naming the known ones

// contiguous: a (capacity, D) slab per (layer, sequence), KvCache. paged: blocks from one
// pool with block tables, prefix caching and copy-on-write, PagedKvCache (paged_cache.h).
enum class KvLayout { Contiguous, Paged };
const char* to_string(KvLayout layout);
KvLayout layout_from_name(std::string_view name);  // throws Error naming the known ones

struct EngineOptions {
  Backend backend = Backend::Invariant;
  int batch = 1;     // B: sequences the cache holds
  int capacity = 0;  // slots per sequence; 0 = the model's max_seq_len
  Fault fault = Fault::None;
  KvLayout layout = KvLayout::Contiguous;
  PagedOptions paged;  // the paged layout's block size, pool and placement
  // Worker threads of the forward pass; 0 = MINIINFER_THREADS if set, else the machine's cores
  // (resolve_threads, base/threads.h). Any count gives the same bytes: work is split only along
  // independent outputs (rows, column groups, heads), never along a reduction.
  int threads = 0;
  // A sliding window with attention sinks (window.h, docs/sliding-window.md): a query reads the
  // first `sinks` positions and the newest window - sinks up to itself; 0 = off (sinks must be
  // 0 then). Contiguous layout only. The cache keeps sinks slots plus a ring of
  // window - sinks + window_spare, so a truncation or rollback may go back window_spare + 1
  // positions; a negative spare means `window`. Positions still run to `capacity`.
  int window = 0;
  int sinks = 0;
  int window_spare = -1;
  // The contiguous cache's K/V format (quant_cache.h, docs/quantized-cache.md) and its residual:
  // the newest rows kept in float, quantized R at a time (0: none; else a power of two up to
  // the capacity). Full recompute rounds its rows through the same quantizer at the same
  // boundaries, so the two paths stay byte-identical.
  KvQuant kv_quant = KvQuant::F32;
  int kv_residual = 0;
};

// The K and V rows a full-recompute forward computed, for comparison with cache rows.
struct KvRows {
  int n_layer = 0, n_head = 0, T = 0, d_head = 0;
  std::vector<float> k, v;  // (L, H, T, d_head); K after RoPE
  // (T) whether the cache still holds position t (a sliding window drops old ones, whose rows
  // here are zeros); empty: every position is held.
  std::vector<char> held;
  bool holds(int pos) const { return held.empty() || held[static_cast<size_t>(pos)] != 0; }
  std::span<const float> k_row(int layer, int head, int pos) const { return row(k, layer, head, pos); }
  std::span<const float> v_row(int layer, int head, int pos) const { return row(v, layer, head, pos); }

 private:
  std::span<const float> row(const std::vector<float>& x, int layer, int head, int pos) const {
    return {x.data() + ((static_cast<size_t>(layer) * n_head + head) * T + pos) * d_head,
            static_cast<size_t>(d_head)};
  }
};

// A chunk of tokens for sequence `seq`, appended at its cursor.
struct Chunk {
  int seq = 0;
  std::span<const int> tokens;
};

class Engine {
 public:
  // Throws Error if the model's config is invalid or any tensor has the wrong size.
  explicit Engine(const Model& model, EngineOptions options = {});
  // Linear::weight and bias point into model_: an engine is neither copied nor moved (hold it
  // by unique_ptr to pass it around).
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Config& config() const { return config_; }
  int vocab_size() const { return config_.vocab_size; }
  int batch() const { return batch_; }
  int capacity() const { return capacity_; }  // positions per sequence
  // The sliding window (off unless EngineOptions::window), ring included.
  const WindowSpec& window() const { return window_; }

  Backend backend() const { return backend_; }
  void set_backend(Backend backend) { backend_ = backend; }
  Fault fault() const { return fault_; }
  // The fault's variation points (faults.h) act on the cached path from the next call on.
  // Throws Error if the fault has nothing to act on in this layout (a paged fault on the
  // contiguous cache, or a fault of the contiguous cache's operations on the paged one).
  void set_fault(Fault fault);
  // The forward pass's worker threads (at least 1). set_threads takes effect from the next call;
  // 0 resolves as EngineOptions::threads does. Throws Error for a negative count.
  int threads() const { return threads_; }
  void set_threads(int threads);
  Trace* trace() const { return trace_; }
  void set_trace(Trace* trace) { trace_ = trace; }

  // Full recompute: tokens at positions 0..T-1 in one pass. logits: (T, V) if all_rows, else
  // (V) for the last position. If kv is non-null it receives the K and V rows computed.
  void forward_uncached(std::span<const int> tokens, std::span<float> logits, bool all_rows = false,
                        KvRows* kv = nullptr);
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows = false, KvRows* kv = nullptr);

  // Cached: append `tokens` to sequence `seq` at its cursor and return the logits of the last
  // (or, if all_rows, of every) new position: (V) or (n, V).
  void forward_cached(int seq, std::span<const int> tokens, std::span<float> logits, bool all_rows = false);
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows = false);
  // Speculative decoding's verify call: `tokens` (the last accepted token, then the drafts)
  // appended to `seq` at its cursor in one cached call, every row's logits (n, V). The rows are
  // the cached path's (so they equal full recompute's bitwise); the variation points see them
  // as Pass::Verify, so a fault can act on verify alone.
  void verify(int seq, std::span<const int> tokens, std::span<float> logits);
  std::vector<float> verify(int seq, std::span<const int> tokens);
  // Speculative decoding's rollback: `seq` keeps its first `keep` tokens, the rejected drafts
  // after them leave. Its own operation (the variation's rollback hook), as truncate has its own.
  void rollback(int seq, int keep);
  // Several sequences in one pass, each appending its own chunk at its own cursor (ragged
  // batched prefill, batched decode). logits: (chunks.size(), V), the last row of each chunk.
  // A sequence may appear at most once. Every chunk is checked before any runs, so a call
  // that throws Error changes no cursor.
  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits);
  // Batched decode: one token per listed sequence (at most batch() of them). logits:
  // (seqs.size(), V). Like forward_batch, a call that throws changes no cursor.
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits);

  // The K and V rows the cache holds for `seq`, slots 0..cursor-1, laid out as full recompute's
  // KvRows (for comparing the two). On the paged layout a preempted sequence is recomputed
  // first (through the cached path, as its next use would), so the rows are there to read:
  // logically const, since recomputing changes no byte of what it reports.
  KvRows cache_rows(int seq) const;
  // The contiguous layout's cache. Throws Error on the paged layout (use paged(), cache_rows
  // or poison_unused there), so nothing reads a slab that does not exist.
  const KvCache& cache() const;
  KvCache& cache();
  // The paged layout's cache, for introspection (block tables, stats, check()); null when
  // contiguous.
  const PagedKvCache* paged() const { return paged_.get(); }
  // Tokens `seq` holds (0 for a freed sequence; a preempted one keeps its count).
  int cursor(int seq) const;
  void reset();  // a reset engine behaves like a fresh one (the paged pool and its prefix cache too)
  void reset(int seq);
  // A new request on `seq` (or on every sequence): it starts on an empty cache, as a reset
  // would, unless the active fault keeps the old rows.
  void start_request(int seq);
  void start_request();
  // Test aid, both layouts: `value` into every cache slot no sequence holds (contiguous: every
  // slot at or past each cursor; paged: every unheld slot of every block the prefix cache does
  // not keep), so a read of a slot nobody wrote poisons the logits.
  void poison_unused(float value);
  void truncate(int seq, int p);
  void fork(int src, int dst, int prefix_len);

  // Serving: a new request on `seq` with `prompt`. Its old rows go (as start_request), then,
  // on the paged layout, the longest run of the prompt's full blocks that the prefix cache
  // holds is mapped in (at most prompt.size() - 1 tokens: the last position is always
  // computed), and the rest runs as one cached chunk. logits: (V), the last position's.
  // Returns the tokens reused (always 0 on the contiguous layout).
  int submit(int seq, std::span<const int> prompt, std::span<float> logits);
  // `seq` gives up its rows (on the paged layout its blocks go back to the pool, the prefix
  // cache keeping the full ones) and is freed: until a submit, reset or fork makes it live
  // again, every other operation on it is refused with an Error naming it.
  void free(int seq);
  bool freed(int seq) const;
  KvLayout layout() const;
  KvQuant kv_quant() const { return quant_ ? quant_->format() : KvQuant::F32; }
  int kv_residual() const { return quant_ ? quant_->residual() : 0; }
  // The quantized cache, for introspection (its bytes); null for a float cache.
  const QuantKvCache* quantized() const { return quant_.get(); }

 private:
  // A projection: the file's (OC, C) weight, its packed copy and its bias.
  struct Linear {
    int C = 0, OC = 0;
    kernels::PackedWeight packed;  // (ceil(OC/64), C, 64), see kernels::pack_weight
    const float* weight = nullptr;  // (OC, C), into model_, for the eigen backend
    const float* bias = nullptr;    // (OC) or null, into model_
  };
  struct Layer {
    Linear q, k, v, o, fc_in, fc_out;
  };
  // Rows [row0, row0 + n) of a call belong to sequence `seq`, positions pos0.. pos0 + n - 1.
  struct Segment {
    int seq = 0, pos0 = 0, n = 0, row0 = 0;
    Pass pass = Pass::Uncached;
  };

  void make_quantized(const EngineOptions& options);
  // Quantized cache, residual mode: after a cut inside a flushed group
  // (QuantKvCache::recompute_from), `tokens` (the group's kept ones) appended again to `seq`,
  // whose cursor is the group's first slot; logits go nowhere.
  void recompute_quantized(int seq, const std::vector<int>& tokens);
  Linear make_linear(const std::vector<float>& w, const std::vector<float>* b, int C, int OC);
  void linear(float* out, const float* inp, const Linear& w, int T, bool library);
  void linear_rows(float* const* out_rows, const float* inp, const Linear& w, int T, bool library);
  void check_tokens(std::span<const int> tokens) const;
  void check_chunks(std::span<const Chunk> chunks) const;
  void check_live(int seq) const;  // throws Error if seq is freed
  KvStore& store();
  const KvStore& store() const;
  // Paged layout, before a cached call: recompute the call's preempted sequences, then make the
  // blocks it writes present and writable (PagedKvCache::reserve). `keep`: sequences no
  // preemption may take (the call's, and an outer call's during a recompute).
  // `verify`: the call is Engine::verify (its segments are Pass::Verify).
  void make_room(std::span<const Chunk> chunks, std::span<const int> keep, bool verify = false);
  // The slots each chunk's rows write, asked of the active variation, into writes_.
  void paged_writes(std::span<const Chunk> chunks, bool verify = false);
  void recompute(int seq, std::span<const int> keep);
  // A preempted sequence (paged layout) recomputed before its rows are read; else nothing.
  void make_resident(int seq);
  // The forward pass over `segs` (rows of `tokens`, concatenated); K/V go into and are read
  // from `store`. logits: (N, V) if all_rows else (segs.size(), V).
  // `var` is model_variation() for full recompute, the active fault's for the cached path.
  // `win`: the call's window (off, or the cache's, or full recompute's with ring 0).
  void run(std::span<const Segment> segs, const int* tokens, int N, KvStore& store, float* logits, bool all_rows,
           const Variation& var, const WindowSpec& win);
  // The sliding window: the positions row r reads (the causal `read` narrowed to the window)
  // as a table of slots in win_table_, and the view through it.
  void window_read(int r, SlotsRead& read, const Variation& var);
  kernels::KvView read_view(kernels::KvView view, int r) const;
  // Rows a cached chunk at `cursor` may have in one pass: its rows write their ring slots before
  // any reads, so none may overwrite a position an earlier row of the pass still reads.
  int ring_piece(int cursor) const;
  void run_pieces(std::span<const Chunk> chunks, float* logits, bool all_rows, bool verify);
  // What the variation points are told: the call's shape at layer l, then a segment's first row.
  RowSite call_site(std::span<const Segment> segs, int layer) const;
  static RowSite segment_site(RowSite call, const Segment& s);
  void project_qkv(int layer, std::span<const Segment> segs, int N, KvStore& store, bool library, const Variation& var);
  void attend(int layer, std::span<const Segment> segs, const KvStore& store, const Variation& var);
  void attend_block(int layer, const Segment& s, const KvStore& store, const Numerics& num);
  void attend_rows(const KvStore& store, long long work);
  void attend_row(int r, int h0, int h1, const KvStore& store, float* probs);
  void run_cached(std::span<const Chunk> chunks, float* logits, bool all_rows, bool verify = false);
  void record_attention(const Segment& s, int layer, const KvStore& store, const Numerics& num);
  void record_cache_reads(const Segment& s, int layer, const KvStore& store, int last);
  void record(TraceKind kind, const Segment& seg, int layer, int head, int pos, const float* data, int n);
  // One record per traced row of `segs`: rows is (N, width), head -1.
  void record_rows(TraceKind kind, std::span<const Segment> segs, int layer, const float* rows, int width);

  Config config_;
  Model model_;          // the file's layout: embeddings, LayerNorms, biases, eigen weights
  std::vector<Layer> layers_;
  Linear head_;          // tok_emb as (V, D): the tied output head
  kernels::RopeTable rope_;
  int batch_ = 0, capacity_ = 0;
  KvLayout layout_ = KvLayout::Contiguous;
  KvCache cache_;        // the contiguous layout's K/V: (L, B, capacity, D); (L, B, 1, D) when paged
  std::unique_ptr<PagedKvCache> paged_;  // the paged layout's pool and tables; null when contiguous
  std::unique_ptr<QuantKvCache> quant_;          // the quantized K/V; null for a float cache
  std::unique_ptr<QuantKvCache> quant_scratch_;  // full recompute's, when quantized (model's variation)
  std::vector<std::vector<int>> quant_tokens_;   // (B) each sequence's tokens, when quantized

  std::vector<char> freed_;              // (B) freed by free(), until a submit, reset or fork
  KvCache scratch_kv_;   // the uncached path's K/V for one call: (L, 1, max_seq_len, D)
  Backend backend_ = Backend::Invariant;
  Fault fault_ = Fault::None;
  const Variation* variation_ = &model_variation();  // variation(fault_)
  Trace* trace_ = nullptr;
  int threads_ = 1;
  WindowSpec window_;               // the cache's window (ring > 0), or off
  WindowSpec call_window_;          // the running call's
  std::vector<int> win_table_;      // (R, win_stride_) slots row r reads, in position order
  size_t win_stride_ = 0;           // window + 1 (the wide-mask fault's)
  std::unique_ptr<ThreadPool> pool_;  // threads_ - 1 workers; null for one thread

  // Scratch, sized once for R = max(max_seq_len, B) rows; nothing allocates per call.
  int rows_ = 0;                    // R
  std::vector<float> x_;            // (R, D) residual stream
  std::vector<float> ln_;           // (R, D) LayerNorm output
  std::vector<float> q_;            // (R, D) queries after RoPE
  std::vector<float> att_;          // (R, D) concatenated head outputs
  std::vector<float> y_;            // (R, D) projection output before the residual add
  std::vector<float> h_;            // (R, F) MLP hidden
  std::vector<float> probs_;        // (threads, H, max_seq_len) a row's attention probabilities, per thread
  size_t causal_size_ = 0;          // kernels::attention_causal_scratch(max_seq_len, d_head)
  kernels::PackedWeight causal_;    // (threads, causal_size_) the causal kernel's scratch, per thread
  std::vector<Numerics> row_nums_;  // (R) the numerics of row r's attention
  std::vector<int> row_todo_;       // (<= R) the rows attention computes one at a time
  std::vector<float> eigen_out_;    // (R, D) eigen backend: rows before scattering to the cache
  std::vector<float*> k_rows_;      // (R) where row r's K goes: its cache slot
  std::vector<float*> v_rows_;      // (R) where row r's V goes
  std::vector<SlotsRead> reads_;    // (R) what row r's attention reads
  std::vector<int> row_pos_;        // (R) row r's position (the quantized cache's view depends on it)
  std::vector<SeqRows> seq_rows_;   // (B) a call's rows per sequence, for the store's layer hooks
  std::vector<int> tokens_;         // (R) a call's tokens, concatenated
  std::vector<Segment> segs_;       // (B) a call's segments
  std::vector<Chunk> decode_chunks_;  // (B) decode's one-token chunks
  std::vector<float> recompute_logits_;  // (V) a recompute's logits, which nothing reads
  std::vector<SlotWrites> writes_;  // (B) paged_writes' answer
  std::vector<Segment> write_segs_;  // (B) paged_writes' segments
  std::vector<int> keep_;           // (B) the sequences of a call, which no preemption may take
};

}  // namespace miniinfer
