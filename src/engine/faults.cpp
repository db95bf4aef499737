// The fault catalogue. Each fault is declared once, below, as a Variation that overrides the
// one variation point it deviates at, with its name, the kind of real bug it imitates and its
// one-line description (`props --inject list` prints that line; keep it stable). The forward
// pass holds no fault: it asks the active Variation (variation.h).
#include "engine/faults.h"

#include <algorithm>
#include <array>
#include <vector>

#include "base/error.h"
#include "engine/kv_cache.h"

namespace miniinfer {

namespace {

bool decode(const RowSite& r) { return r.pass == Pass::Decode; }

struct CursorOffByOne final : Variation {
  static constexpr const char* kName = "cursor-off-by-one";
  static constexpr const char* kImitates = "a cache write slot computed from a cursor that is one ahead of the token's position";
  static constexpr const char* kDescription = "decode writes K/V one slot past the cursor, leaving a hole at the cursor";
  CacheWrite cache_write(const RowSite& r) const override {
    return decode(r) ? CacheWrite{r.pos + 1, true} : Variation::cache_write(r);
  }
};

struct SelfExcluded final : Variation {
  static constexpr const char* kName = "self-excluded";
  static constexpr const char* kImitates = "a decode step that appends the new K/V to the cache after attending to it";
  static constexpr const char* kDescription = "decode attends only to past slots: the current K/V is appended after attention";
  SlotsRead slots_read(const RowSite& r) const override {
    return decode(r) ? SlotsRead{r.pos, r.layer, r.seq} : Variation::slots_read(r);
  }
};

struct DecodeMask final : Variation {
  static constexpr const char* kName = "decode-mask";
  static constexpr const char* kImitates = "an is_causal mask built for q_len = 1 with the query at position 0, so decode sees slot 0 only";
  static constexpr const char* kDescription = "the causal mask for q_len=1 is built as if the query sat at position 0";
  SlotsRead slots_read(const RowSite& r) const override {
    return decode(r) ? SlotsRead{1, r.layer, r.seq} : Variation::slots_read(r);
  }
};

struct LayerAlias final : Variation {
  static constexpr const char* kName = "layer-alias";
  static constexpr const char* kImitates = "KV block indices resolved once and shared by every attention layer";
  static constexpr const char* kDescription = "during decode every layer reads layer 0's cache";
  SlotsRead slots_read(const RowSite& r) const override {
    return decode(r) ? SlotsRead{r.pos + 1, 0, r.seq} : Variation::slots_read(r);
  }
};

struct LastLayerStale final : Variation {
  static constexpr const char* kName = "last-layer-stale";
  static constexpr const char* kImitates = "a layer's KV copied out before that layer's computation finished";
  static constexpr const char* kDescription = "the last layer's V is never written to the cache during decode";
  CacheWrite cache_write(const RowSite& r) const override {
    return decode(r) && r.layer == r.n_layer - 1 ? CacheWrite{r.pos, false} : Variation::cache_write(r);
  }
};

struct Fp64Decode final : Variation {
  static constexpr const char* kName = "fp64-decode";
  static constexpr const char* kImitates = "a decode-only attention kernel that accumulates at another precision than prefill's";
  static constexpr const char* kDescription = "decode accumulates attention in double while prefill uses float";
  Numerics attention_numerics(const RowSite& r) const override {
    Numerics n = Variation::attention_numerics(r);
    n.fp64 = decode(r);
    return n;
  }
};

struct RopeDecodePhase final : Variation {
  static constexpr const char* kName = "rope-decode-phase";
  static constexpr const char* kImitates = "decode RoPE offset taken from a seen-token count updated too early or too late";
  static constexpr const char* kDescription = "decode rotates q and k with position cursor-1";
  int rope_position(const RowSite& r) const override { return decode(r) ? r.pos - 1 : r.pos; }
};

struct BatchStride final : Variation {
  static constexpr const char* kName = "batch-stride";
  static constexpr const char* kImitates = "a per-sequence cache offset read as one scalar shared by the whole batch";
  static constexpr const char* kDescription = "in decode, sequence b reads the cache at sequence 0's offset (shows only with B>1)";
  SlotsRead slots_read(const RowSite& r) const override {
    return decode(r) ? SlotsRead{r.pos + 1, r.layer, 0} : Variation::slots_read(r);
  }
};

struct StaleCache final : Variation {
  static constexpr const char* kName = "stale-cache";
  static constexpr const char* kImitates = "a server that keeps one request's KV cache for the next request";
  static constexpr const char* kDescription = "the cache is not reset between two generate calls on one engine";
  void start_request(KvCache&, int) const override {}
};

struct ResumeOffset final : Variation {
  static constexpr const char* kName = "resume-offset";
  static constexpr const char* kImitates = "chunked prefill that takes position ids from the chunk instead of the sequence";
  static constexpr const char* kDescription = "a q_len>1 chunk on a non-empty cache takes RoPE positions from 0";
  int rope_position(const RowSite& r) const override { return r.pass == Pass::Resume ? r.index : r.pos; }
};

struct LibraryGemv final : Variation {
  static constexpr const char* kName = "library-gemv";
  static constexpr const char* kImitates = "a GEMM library that picks its kernel by shape, so decode's low bits differ from prefill's";
  static constexpr const char* kDescription = "decode uses Eigen's product while prefill uses the invariant kernel";
  bool library_products(bool all_decode) const override { return all_decode; }
};

struct SoftmaxScale final : Variation {
  static constexpr const char* kName = "softmax-scale";
  static constexpr const char* kImitates = "one attention path (here the cached one) passed the wrong softmax scale";
  static constexpr const char* kDescription = "decode scales attention scores by 1/d_head instead of 1/sqrt(d_head)";
  Numerics attention_numerics(const RowSite& r) const override {
    return decode(r) ? Numerics{1.0f / static_cast<float>(r.d_head), false} : Variation::attention_numerics(r);
  }
};

struct ForkShallow final : Variation {
  static constexpr const char* kName = "fork-shallow";
  static constexpr const char* kImitates = "prefix sharing whose per-layer copy loop stops early";
  static constexpr const char* kDescription = "fork copies the lower half of the layers only; the upper layers keep the target's old rows";
  void fork(KvCache& cache, int src, int dst, int prefix_len) const override {
    cache.cursor(dst);  // a bad dst throws here, before anything is read
    const int L = cache.n_layer();
    const size_t n = static_cast<size_t>(std::clamp(prefix_len, 0, cache.capacity())) * cache.d_model();
    std::vector<std::vector<float>> kept;
    for (int l = L / 2; l < L; ++l) {
      kept.emplace_back(cache.k_slab(l, dst), cache.k_slab(l, dst) + n);
      kept.emplace_back(cache.v_slab(l, dst), cache.v_slab(l, dst) + n);
    }
    cache.fork(src, dst, prefix_len);
    size_t i = 0;
    for (int l = L / 2; l < L; ++l, i += 2) {
      std::copy(kept[i].begin(), kept[i].end(), cache.k_slab(l, dst));
      std::copy(kept[i + 1].begin(), kept[i + 1].end(), cache.v_slab(l, dst));
    }
  }
};

struct TruncateStale final : Variation {
  static constexpr const char* kName = "truncate-stale";
  static constexpr const char* kImitates = "a rollback (speculative decoding, stop sequences) that keeps one rejected token counted";
  static constexpr const char* kDescription = "truncation to p leaves the cursor at p + 1";
  void truncate(KvCache& cache, int seq, int p) const override {
    const int before = cache.cursor(seq);
    cache.truncate(seq, p);
    if (p < before) cache.advance(seq, 1);
  }
};

struct RaggedPosition final : Variation {
  static constexpr const char* kName = "ragged-position";
  static constexpr const char* kImitates = "batched generation with one shared cache position used as every sequence's positions";
  static constexpr const char* kDescription = "a batched call rotates every sequence's rows at the first sequence's positions";
  int rope_position(const RowSite& r) const override {
    const int shared = r.first_pos0 + r.index;
    return r.pass != Pass::Uncached && r.n_segs > 1 && shared < r.max_seq_len ? shared : r.pos;
  }
};

struct ContinuousBatchMask final : Variation {
  static constexpr const char* kName = "continuous-batch-mask";
  static constexpr const char* kImitates = "a flattened varlen batch whose decode rows' key offsets point into a prefill chunk";
  static constexpr const char* kDescription =
      "in a call mixing prefill chunks and decode rows, a decode row attends to a prefill chunk's sequence";
  SlotsRead slots_read(const RowSite& r) const override {
    if (!decode(r) || r.chunk_n == 0) return Variation::slots_read(r);
    return {std::min(r.pos + 1, r.chunk_pos0 + r.chunk_n), r.layer, r.chunk_seq};
  }
};

struct ChunkMask final : Variation {
  static constexpr const char* kName = "chunk-mask";
  static constexpr const char* kImitates = "prefill that drops the causal mask when a KV cache is attached";
  static constexpr const char* kDescription =
      "a multi-token cached chunk (prefill or resume) has no causal mask: every row sees the whole chunk";
  SlotsRead slots_read(const RowSite& r) const override {
    if (r.pass == Pass::Uncached || r.seg_n == 1) return Variation::slots_read(r);
    return {r.seg_pos0 + r.seg_n, r.layer, r.seq};
  }
};

// ---- mutants of the kernels, the batch's row bookkeeping and the sampler ----

struct BlockSlotShort final : Variation {
  static constexpr const char* kName = "block-slot-short";
  static constexpr const char* kImitates = "a tiled prefill attention kernel whose per-row key bound is off by one in the tile's last row";
  static constexpr const char* kDescription =
      "the causal block kernel (cached chunks of 8 or more rows) lets the last row of each block of 4 read one slot short";
  Numerics attention_numerics(const RowSite& r) const override {
    Numerics n = Variation::attention_numerics(r);
    if (r.pass == Pass::Prefill || r.pass == Pass::Resume) n.mutant = kernels::Mutant::BlockSlotShort;
    return n;
  }
};

struct HeadsOrder final : Variation {
  static constexpr const char* kName = "heads-order";
  static constexpr const char* kImitates = "a fused multi-head decode kernel whose last head takes a different reduction order";
  static constexpr const char* kDescription =
      "decode's all-heads attention kernel sums the last head's weighted values from the newest slot back";
  Numerics attention_numerics(const RowSite& r) const override {
    Numerics n = Variation::attention_numerics(r);
    if (decode(r)) n.mutant = kernels::Mutant::LastHeadReversed;
    return n;
  }
};

struct SoftmaxOrder final : Variation {
  static constexpr const char* kName = "softmax-order";
  static constexpr const char* kImitates = "a decode softmax whose normalising sum runs in another order than prefill's";
  static constexpr const char* kDescription = "decode's softmax sums its exponentials from the last slot back";
  Numerics attention_numerics(const RowSite& r) const override {
    Numerics n = Variation::attention_numerics(r);
    if (decode(r)) n.mutant = kernels::Mutant::SoftmaxReversed;
    return n;
  }
};

struct LayerNormOrder final : Variation {
  static constexpr const char* kName = "layernorm-order";
  static constexpr const char* kImitates = "a decode-only LayerNorm kernel that reduces its mean and variance in another order";
  static constexpr const char* kDescription = "in decode, the blocks' LayerNorms sum mean and variance from the last index back";
  bool reversed_layernorm(bool all_decode) const override { return all_decode; }
};

struct LogitsRow final : Variation {
  static constexpr const char* kName = "logits-row";
  static constexpr const char* kImitates = "a varlen batch's last-token gather indexed with one chunk length for every sequence";
  static constexpr const char* kDescription =
      "a cached call of several chunks takes each chunk's logits from row (its first row + the first chunk's length - 1)";
  int logits_row(const RowSite& r) const override {
    return r.pass != Pass::Uncached && r.n_segs > 1 ? r.first_n - 1 : r.seg_n - 1;
  }
};

struct StaleCoin final : Variation {
  static constexpr const char* kName = "stale-coin";
  static constexpr const char* kImitates = "a sampler whose random number is drawn after the token instead of before it";
  static constexpr const char* kDescription = "the cached loop draws the token of step s > 0 with the coin of step s - 1";
  bool stale_coin() const override { return true; }
};

struct SplitK final : Variation {
  static constexpr const char* kName = "split-k";
  static constexpr const char* kImitates =
      "a split-k GEMV that gives each thread a slice of the reduction and adds the partial sums, so the bytes depend on the thread count";
  static constexpr const char* kDescription =
      "with more than one thread, the cached path's fc_out product sums one k part per thread and adds the parts";
  int fc_out_k_parts(int threads) const override { return threads; }
};

// ---- the paged cache's faults (PagedKvCache asks these points) ----

struct PrefixHashShort final : Variation {
  static constexpr const char* kName = "prefix-hash-short";
  static constexpr const char* kImitates = "a prefix-cache block key hashed over a token range one short, so two prompts that differ in a block's last token share its rows";
  static constexpr const char* kDescription = "a block's prefix-cache key covers its first block_size - 1 tokens: a prompt differing in the last reuses the block";
  int block_key_tokens(int block_size) const override { return block_size - 1; }
};

struct CowMissing final : Variation {
  static constexpr const char* kName = "cow-missing";
  static constexpr const char* kImitates = "a shared KV block appended to without the copy-on-write check (a fork or a cached prefix overwritten in place)";
  static constexpr const char* kDescription = "the first write into a block another table holds, or the prefix cache keys, writes in place";
  bool copy_on_write() const override { return false; }
};

struct RefcountShort final : Variation {
  static constexpr const char* kName = "refcount-short";
  static constexpr const char* kImitates = "a fork that increments the reference counts of all shared blocks but the partial last one";
  static constexpr const char* kDescription = "fork does not count the last block it shares: releasing one holder frees a block the other still reads";
  bool fork_counts_last_block() const override { return false; }
};

struct BlockTableBoundary final : Variation {
  static constexpr const char* kName = "block-table-boundary";
  static constexpr const char* kImitates = "a slot-to-block mapping off by one at a block boundary (slot / block_size computed from slot - 1)";
  static constexpr const char* kDescription = "the write into the first slot of a block (past the first) goes through the previous table entry";
  int write_entry(int slot, int block_size) const override {
    return slot > 0 && slot % block_size == 0 ? slot / block_size - 1 : slot / block_size;
  }
};

struct EvictStale final : Variation {
  static constexpr const char* kName = "evict-stale";
  static constexpr const char* kImitates = "an evicted KV block reused without removing its hash from the prefix cache's table";
  static constexpr const char* kDescription = "eviction hands a cached block out but leaves the registry pointing at it: a later hit reads another sequence's rows";
  bool evict_unregisters() const override { return false; }
};

struct PartialBlockFull final : Variation {
  static constexpr const char* kName = "partial-block-full";
  static constexpr const char* kImitates = "a block marked full (and hashed) by its capacity instead of its token count, when the request finishes";
  static constexpr const char* kDescription = "releasing a sequence registers its partly filled last block as full, keyed by the ids its slots last held";
  bool registers_partial_block() const override { return true; }
};

// ---- the sliding window's faults (window.h) ----

struct RingWrapOffByOne final : Variation {
  static constexpr const char* kName = "ring-wrap-off-by-one";
  static constexpr const char* kImitates = "a ring-buffer index that is off by one at the wrap (the wrapped index computed before the modulo)";
  static constexpr const char* kDescription = "the first position after each wrap of the window's ring goes to, and is read from, the next ring slot";
  int ring_slot(int pos, const WindowSpec& w) const override {
    const int i = pos - w.sinks;
    if (w.ring == 0 || pos < w.sinks + w.ring || i % w.ring != 0) return window_slot(pos, w);
    return w.sinks + (i + 1) % w.ring;
  }
};

struct WindowMaskWide final : Variation {
  static constexpr const char* kName = "window-mask-wide";
  static constexpr const char* kImitates = "a reference implementation whose sliding-window mask is built with <= instead of < (one position too wide)";
  static constexpr const char* kDescription = "full recompute's window mask reads W + 1 positions: the reference, not the cache, is wrong";
  int recompute_window(int window) const override { return window + 1; }
};

// Speculative decoding (docs/speculative.md): the verify call and the rollback after it.
struct VerifyPositionShift final : Variation {
  static constexpr const char* kName = "verify-position-shift";
  static constexpr const char* kImitates = "a verify pass that computes its draft positions from the cursor after the pending token was counted";
  static constexpr const char* kDescription = "the verify call rotates q and k of its rows at their positions plus one";
  int rope_position(const RowSite& r) const override {
    return r.pass == Pass::Verify && r.pos + 1 < r.max_seq_len ? r.pos + 1 : r.pos;
  }
};

struct RollbackCursor final : Variation {
  static constexpr const char* kName = "rollback-cursor";
  static constexpr const char* kImitates = "a speculative rollback that drops the rejected tokens from the output but not from the cache";
  static constexpr const char* kDescription = "rollback leaves the cursor where verify left it: the rejected drafts' rows stay counted";
  void rollback(KvCache& /*cache*/, int /*seq*/, int /*keep*/) const override {}
};

// ---- the quantized cache's faults (QuantKvCache asks these points) ----

struct FlushChunking final : Variation {
  static constexpr const char* kName = "flush-chunking";
  static constexpr const char* kImitates =
      "a quantized cache that flushes its residual float buffer at the end of every update (HF QuantizedCache), so which rows are float depends on how the prompt was chunked";
  static constexpr const char* kDescription =
      "the cached path quantizes every row at the end of each call: a later query reads its group's earlier rows quantized, not float";
  int kv_flush(int cursor, int) const override { return cursor; }
};

struct ScaleGroup final : Variation {
  static constexpr const char* kName = "scale-group";
  static constexpr const char* kImitates = "a per-head quantization scale computed over the wrong axis (the whole hidden row of all heads)";
  static constexpr const char* kDescription = "the cached path's int8 scale is the absmax of the whole d_model row, not of one head's d_head floats";
  int kv_scale_group(int, int d_model) const override { return d_model; }
};

// A catalogue row: the declaration's strings and its Variation (null for None: the model).
struct FaultInfo {
  Fault fault;
  const char* name;
  const char* imitates;
  const char* description;
  const Variation* variation;
};

template <class V>
constexpr V kInstance{};

template <class V>
constexpr FaultInfo declared(Fault fault) {
  return {fault, V::kName, V::kImitates, V::kDescription, &kInstance<V>};
}

constexpr std::array kFaults = {
    FaultInfo{Fault::None, "none", "nothing: the engine as written", "no fault: the engine as written", nullptr},
    declared<CursorOffByOne>(Fault::CursorOffByOne),
    declared<SelfExcluded>(Fault::SelfExcluded),
    declared<DecodeMask>(Fault::DecodeMask),
    declared<LayerAlias>(Fault::LayerAlias),
    declared<LastLayerStale>(Fault::LastLayerStale),
    declared<Fp64Decode>(Fault::Fp64Decode),
    declared<RopeDecodePhase>(Fault::RopeDecodePhase),
    declared<BatchStride>(Fault::BatchStride),
    declared<StaleCache>(Fault::StaleCache),
    declared<ResumeOffset>(Fault::ResumeOffset),
    declared<LibraryGemv>(Fault::LibraryGemv),
    declared<SoftmaxScale>(Fault::SoftmaxScale),
    declared<ForkShallow>(Fault::ForkShallow),
    declared<TruncateStale>(Fault::TruncateStale),
    declared<RaggedPosition>(Fault::RaggedPosition),
    declared<ContinuousBatchMask>(Fault::ContinuousBatchMask),
    declared<ChunkMask>(Fault::ChunkMask),
    declared<BlockSlotShort>(Fault::BlockSlotShort),
    declared<HeadsOrder>(Fault::HeadsOrder),
    declared<SoftmaxOrder>(Fault::SoftmaxOrder),
    declared<LayerNormOrder>(Fault::LayerNormOrder),
    declared<LogitsRow>(Fault::LogitsRow),
    declared<StaleCoin>(Fault::StaleCoin),
    declared<SplitK>(Fault::SplitK),
    declared<PrefixHashShort>(Fault::PrefixHashShort),
    declared<CowMissing>(Fault::CowMissing),
    declared<RefcountShort>(Fault::RefcountShort),
    declared<BlockTableBoundary>(Fault::BlockTableBoundary),
    declared<EvictStale>(Fault::EvictStale),
    declared<PartialBlockFull>(Fault::PartialBlockFull),
    declared<RingWrapOffByOne>(Fault::RingWrapOffByOne),
    declared<WindowMaskWide>(Fault::WindowMaskWide),
    declared<VerifyPositionShift>(Fault::VerifyPositionShift),
    declared<RollbackCursor>(Fault::RollbackCursor),
    declared<FlushChunking>(Fault::FlushChunking),
    declared<ScaleGroup>(Fault::ScaleGroup),
};
constexpr std::array<Fault, kFaults.size()> kAll = [] {
  std::array<Fault, kFaults.size()> all{};
  for (size_t i = 0; i < kFaults.size(); ++i) all[i] = kFaults[i].fault;
  return all;
}();

const FaultInfo& info(Fault fault) {
  for (const auto& f : kFaults)
    if (f.fault == fault) return f;
  return kFaults[0];
}
}  // namespace

std::span<const Fault> all_faults() { return kAll; }
const char* to_string(Fault fault) { return info(fault).name; }
const char* describe(Fault fault) { return info(fault).description; }
const char* imitates(Fault fault) { return info(fault).imitates; }
const Variation& variation(Fault fault) {
  const Variation* v = info(fault).variation;
  return v ? *v : model_variation();
}

bool acts_on_paged(Fault fault) {
  switch (fault) {
    case Fault::PrefixHashShort:
    case Fault::CowMissing:
    case Fault::RefcountShort:
    case Fault::BlockTableBoundary:
    case Fault::EvictStale:
    case Fault::PartialBlockFull: return true;
    default: return false;
  }
}

bool acts_on_quantized(Fault fault) { return fault == Fault::FlushChunking || fault == Fault::ScaleGroup; }

bool acts_on_contiguous_only(Fault fault) {
  return fault == Fault::StaleCache || fault == Fault::TruncateStale || fault == Fault::ForkShallow ||
         fault == Fault::RollbackCursor;
}

bool acts_on_window(Fault fault) { return fault == Fault::RingWrapOffByOne || fault == Fault::WindowMaskWide; }

bool acts_on_speculation(Fault fault) { return fault == Fault::VerifyPositionShift || fault == Fault::RollbackCursor; }

void split_k_matmul(float* out, const float* inp, const float* weight, const float* bias, int T, int C, int OC,
                    int parts) {
  std::vector<float> partial(static_cast<size_t>(parts));
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < OC; ++o) {
      const float* x = inp + static_cast<size_t>(t) * C;
      const float* w = weight + static_cast<size_t>(o) * C;
      for (int p = 0; p < parts; ++p) {
        float sum = 0.0f;
        for (int k = C * p / parts; k < C * (p + 1) / parts; ++k) sum += x[k] * w[k];
        partial[static_cast<size_t>(p)] = sum;
      }
      float y = bias ? bias[o] : 0.0f;
      for (float part : partial) y += part;
      out[static_cast<size_t>(t) * OC + o] = y;
    }
}

Fault fault_from_name(std::string_view name) {
  for (const auto& f : kFaults)
    if (name == f.name) return f.fault;
  std::string known;
  for (const auto& f : kFaults) known += (known.empty() ? "" : ", ") + std::string(f.name);
  fail("unknown fault '{}' (known: {})", name, known);
}

}  // namespace miniinfer
