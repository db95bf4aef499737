// The forward pass. One routine, `run`, computes a set of row segments (each a run of positions
// of one sequence); the uncached path calls it with one segment at position 0 over scratch K/V,
// the cached path with chunks at each sequence's cursor over the cache. The few decisions a
// cache bug can get wrong (positions, the cache write, the slots and layer read, attention's
// numerics) are asked of a Variation (variation.h): the model's own for full recompute, the
// active fault's for the cached path. No fault is named here.
#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include <Eigen/Core>

#include "base/error.h"
#include "base/threads.h"

namespace miniinfer {

using kernels::attention_forward;
using kernels::gelu_forward;
using kernels::layernorm_forward;
using kernels::residual_forward;
using kernels::rope_forward;

const char* to_string(Pass pass) {
  switch (pass) {
    case Pass::Uncached: return "uncached";
    case Pass::Prefill: return "prefill";
    case Pass::Decode: return "decode";
    case Pass::Resume: return "resume";
    case Pass::Verify: return "verify";
  }
  return "?";
}

const char* to_string(TraceKind kind) {
  switch (kind) {
    case TraceKind::Q: return "q";
    case TraceKind::K: return "k";
    case TraceKind::V: return "v";
    case TraceKind::Probs: return "probs";
    case TraceKind::AttnOut: return "attn_out";
    case TraceKind::BlockOut: return "block_out";
    case TraceKind::KRead: return "k_read";
    case TraceKind::VRead: return "v_read";
    case TraceKind::Ln1: return "ln1";
    case TraceKind::Ln2: return "ln2";
    case TraceKind::Mlp: return "mlp";
    case TraceKind::FinalLn: return "final_ln";
  }
  return "?";
}

const char* to_string(Backend backend) { return backend == Backend::Eigen ? "eigen" : "invariant"; }

Backend backend_from_name(std::string_view name) {
  if (name == "invariant") return Backend::Invariant;
  if (name == "eigen") return Backend::Eigen;
  fail("unknown backend '{}' (known: invariant, eigen)", name);
}

const char* to_string(KvLayout layout) { return layout == KvLayout::Paged ? "paged" : "contiguous"; }

KvLayout layout_from_name(std::string_view name) {
  if (name == "contiguous") return KvLayout::Contiguous;
  if (name == "paged") return KvLayout::Paged;
  fail("unknown kv cache layout '{}' (known: contiguous, paged)", name);
}

namespace {

// The window options checked and resolved: bad input gets one line naming it.
WindowSpec window_spec(const EngineOptions& o, int max_seq_len) {
  if (o.window < 0) fail("engine: window {} must not be negative (0 = no window)", o.window);
  if (o.sinks < 0) fail("engine: sinks {} must not be negative", o.sinks);
  if (o.window == 0) {
    if (o.sinks > 0) fail("engine: {} sinks need a window (--window W with W > sinks)", o.sinks);
    return {};
  }
  if (o.sinks >= o.window) fail("engine: window {} must be larger than the sink count {}", o.window, o.sinks);
  if (o.window > max_seq_len) fail("engine: window {} exceeds the model's max_seq_len {}", o.window, max_seq_len);
  if (o.layout != KvLayout::Contiguous) fail("engine: a sliding window needs the contiguous kv cache layout, not paged");
  const int spare = o.window_spare < 0 ? o.window : o.window_spare;
  return {o.window, o.sinks, o.window - o.sinks + spare};
}

}  // namespace

Engine::Linear Engine::make_linear(const std::vector<float>& w, const std::vector<float>* b, int C, int OC) {
  Linear lin;
  lin.C = C;
  lin.OC = OC;
  lin.packed = kernels::pack_weight(w, C, OC);
  lin.weight = w.data();
  lin.bias = b ? b->data() : nullptr;
  return lin;
}

Engine::Engine(const Model& model, EngineOptions options)
    : config_(model.config), model_(model), backend_(options.backend), fault_(options.fault),
      variation_(&variation(options.fault)) {
  const Config& c = config_;
  c.validate();
  try {
    check_weights(model_.weights, c);
  } catch (const Error& e) {
    fail("engine: {}", e.what());
  }
  const int capacity = options.capacity == 0 ? c.max_seq_len : options.capacity;
  if (capacity < 0 || capacity > c.max_seq_len)
    fail("engine: capacity {} must lie in 1..max_seq_len ({})", capacity, c.max_seq_len);
  window_ = window_spec(options, c.max_seq_len);
  const int D = c.d_model, F = c.d_ff;
  for (const LayerWeights& lw : model_.weights.layers) {
    layers_.push_back(Layer{make_linear(lw.wq, &lw.bq, D, D), make_linear(lw.wk, &lw.bk, D, D),
                            make_linear(lw.wv, &lw.bv, D, D), make_linear(lw.wo, &lw.bo, D, D),
                            make_linear(lw.w1, &lw.b1, D, F), make_linear(lw.w2, &lw.b2, F, D)});
  }
  head_ = make_linear(model_.weights.tok_emb, nullptr, D, c.vocab_size);
  rope_ = kernels::make_rope_table(c.max_seq_len, c.d_head(), c.rope_theta);
  batch_ = options.batch;
  capacity_ = capacity;
  layout_ = options.layout;
  if (layout_ == KvLayout::Paged) {
    cache_ = KvCache(c.n_layer, options.batch, c.n_head, c.d_head(), 1);
    paged_ = std::make_unique<PagedKvCache>(c.n_layer, options.batch, c.n_head, c.d_head(), capacity, options.paged);
  } else if (window_.on()) {
    cache_ = KvCache(c.n_layer, options.batch, c.n_head, c.d_head(), window_.sinks + window_.ring);
    cache_.set_window(window_, capacity);
  } else if (options.kv_quant != KvQuant::F32) {
    cache_ = KvCache(c.n_layer, options.batch, c.n_head, c.d_head(), 1);
  } else {
    cache_ = KvCache(c.n_layer, options.batch, c.n_head, c.d_head(), capacity);
  }
  make_quantized(options);
  set_fault(options.fault);
  win_stride_ = static_cast<size_t>(window_.window + 1);
  win_table_.assign(std::max<size_t>(1, static_cast<size_t>(std::max(c.max_seq_len, options.batch)) * win_stride_), 0);
  freed_.assign(static_cast<size_t>(options.batch), 0);
  recompute_logits_.assign(static_cast<size_t>(c.vocab_size), 0.0f);
  scratch_kv_ = KvCache(c.n_layer, 1, c.n_head, c.d_head(), quant_ ? 1 : c.max_seq_len);

  rows_ = std::max(c.max_seq_len, options.batch);
  const size_t R = static_cast<size_t>(rows_);
  for (auto* buf : {&x_, &ln_, &q_, &att_, &y_, &eigen_out_}) buf->assign(R * D, 0.0f);
  h_.assign(R * F, 0.0f);
  row_nums_.assign(R, Numerics{});
  row_todo_.reserve(R);
  k_rows_.assign(R, nullptr);
  v_rows_.assign(R, nullptr);
  reads_.assign(R, SlotsRead{});
  row_pos_.assign(R, 0);
  seq_rows_.reserve(static_cast<size_t>(options.batch));
  tokens_.assign(R, 0);
  segs_.reserve(static_cast<size_t>(options.batch));
  keep_.reserve(static_cast<size_t>(options.batch));
  writes_.reserve(static_cast<size_t>(options.batch));
  write_segs_.reserve(static_cast<size_t>(options.batch));
  decode_chunks_.reserve(static_cast<size_t>(options.batch));
  set_threads(options.threads);
}

// The quantized cache and full recompute's twin of it, after checking the options (each bad
// combination is one line naming it).
void Engine::make_quantized(const EngineOptions& o) {
  const int R = o.kv_residual;
  if (o.kv_quant == KvQuant::F32) {
    if (R != 0) fail("engine: kv residual {} needs a quantized cache (kv quant bf16 or int8, not f32)", R);
    return;
  }
  if (layout_ == KvLayout::Paged) fail("engine: the {} kv cache needs the contiguous layout, not paged", to_string(o.kv_quant));
  if (window_.on()) fail("engine: the {} kv cache and a sliding window together are not supported: give one", to_string(o.kv_quant));
  if (R < 0) fail("engine: kv residual {} is negative", R);
  if (R > capacity_) fail("engine: kv residual {} exceeds the cache capacity {}", R, capacity_);
  if ((R & (R - 1)) != 0) fail("engine: kv residual {} is not a power of two", R);
  const Config& c = config_;
  quant_ = std::make_unique<QuantKvCache>(c.n_layer, batch_, c.n_head, c.d_head(), capacity_, o.kv_quant, R);
  quant_scratch_ = std::make_unique<QuantKvCache>(c.n_layer, 1, c.n_head, c.d_head(), c.max_seq_len, o.kv_quant, R);
  quant_tokens_.assign(static_cast<size_t>(batch_), {});
  for (auto& t : quant_tokens_) t.reserve(static_cast<size_t>(capacity_));
}

// The rows a cut inside a flushed group left without their float values, as one cached chunk at
// the group's first slot: every query in it reads the slots below that slot quantized and its
// own group's in float, as when the rows were first written, so the rows come back byte for byte.
void Engine::recompute_quantized(int seq, const std::vector<int>& tokens) {
  if (tokens.empty()) return;
  Trace* const trace = trace_;
  trace_ = nullptr;
  try {
    forward_cached(seq, tokens, recompute_logits_);
  } catch (...) {
    trace_ = trace;
    throw;
  }
  trace_ = trace;
}

// ---- projections: the invariant kernel, or Eigen's product for the contrast backend ----------

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void Engine::linear(float* out, const float* inp, const Linear& w, int T, bool library) {
  if (!library) {
    kernels::matmul_forward(out, inp, w.packed.data(), w.bias, T, w.C, w.OC, pool_.get());
    return;
  }
  Eigen::Map<const RowMatrix> X(inp, T, w.C);
  Eigen::Map<const RowMatrix> W(w.weight, w.OC, w.C);
  Eigen::Map<RowMatrix> Y(out, T, w.OC);
  Y.noalias() = X * W.transpose();
  if (w.bias) Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(w.bias, w.OC);
}

void Engine::linear_rows(float* const* out_rows, const float* inp, const Linear& w, int T, bool library) {
  if (!library) {
    kernels::matmul_forward_rows(out_rows, inp, w.packed.data(), w.bias, T, w.C, w.OC, pool_.get());
    return;
  }
  linear(eigen_out_.data(), inp, w, T, true);
  for (int t = 0; t < T; ++t)
    std::memcpy(out_rows[t], eigen_out_.data() + static_cast<size_t>(t) * w.OC, sizeof(float) * w.OC);
}

// ---- the forward pass -------------------------------------------------------------------------

void Engine::check_tokens(std::span<const int> tokens) const {
  if (tokens.empty()) fail("forward: empty token sequence");
  for (int t : tokens)
    if (t < 0 || t >= config_.vocab_size) fail("forward: token id {} out of range (vocab size {})", t, config_.vocab_size);
}

void Engine::record(TraceKind kind, const Segment& seg, int layer, int head, int pos, const float* data, int n) {
  trace_->records.push_back(TraceRecord{trace_->step, trace_->calls, seg.pass,
                                        seg.pass == Pass::Uncached ? trace_->seq : seg.seq, layer, head, pos,
                                        kind, std::vector<float>(data, data + n)});
}

void Engine::record_rows(TraceKind kind, std::span<const Segment> segs, int layer, const float* rows, int width) {
  for (const Segment& s : segs)
    for (int i = 0; i < s.n; ++i)
      if (trace_->wants(s.pos0 + i))
        record(kind, s, layer, -1, s.pos0 + i, rows + static_cast<size_t>(s.row0 + i) * width, width);
}

// The call's shape at layer l, which every row's site carries (the segment fields follow).
RowSite Engine::call_site(std::span<const Segment> segs, int l) const {
  RowSite site;
  site.layer = l;
  site.n_segs = static_cast<int>(segs.size());
  site.first_pos0 = segs[0].pos0;
  site.first_n = segs[0].n;
  for (const Segment& other : segs) {
    if (other.n <= 1) continue;
    site.chunk_seq = other.seq;
    site.chunk_pos0 = other.pos0;
    site.chunk_n = other.n;
    break;
  }
  site.n_layer = config_.n_layer;
  site.d_head = config_.d_head();
  site.max_seq_len = config_.max_seq_len;
  return site;
}

// `call` with segment s's first row filled in.
RowSite Engine::segment_site(RowSite call, const Segment& s) {
  call.pass = s.pass;
  call.seq = s.seq;
  call.pos = call.seg_pos0 = s.pos0;
  call.seg_n = s.n;
  return call;
}

// q into q_; K and V straight into their slots of `store` (rows of segment s at positions
// pos0.. of sequence s.seq); then RoPE on q and on the K rows where they lie.
void Engine::project_qkv(int l, std::span<const Segment> segs, int N, KvStore& store, bool library,
                         const Variation& var) {
  const Config& c = config_;
  const int H = c.n_head, dh = c.d_head();
  const size_t uD = static_cast<size_t>(c.d_model);
  const Layer& w = layers_[static_cast<size_t>(l)];
  linear(q_.data(), ln_.data(), w.q, N, library);

  const RowSite call = call_site(segs, l);
  for (const Segment& s : segs) {
    const RowSite site = segment_site(call, s);
    for (int i = 0; i < s.n; ++i) {
      const CacheWrite to = var.cache_write(site.row(i));
      const int slot = call_window_.ring > 0 ? var.ring_slot(to.slot, call_window_) : to.slot;
      const size_t r = static_cast<size_t>(s.row0 + i);
      k_rows_[r] = store.k_write(l, s.seq, slot);
      // y_ is free until o_proj: a V row that does not land goes there and is never read.
      v_rows_[r] = to.v_lands ? store.v_write(l, s.seq, slot) : y_.data() + r * uD;
    }
  }
  linear_rows(k_rows_.data(), ln_.data(), w.k, N, library);
  linear_rows(v_rows_.data(), ln_.data(), w.v, N, library);

  for (const Segment& s : segs) {
    const RowSite site = segment_site(call, s);
    for (int i = 0; i < s.n; ++i) {
      const int pos = var.rope_position(site.row(i));
      const size_t r = static_cast<size_t>(s.row0 + i);
      rope_forward(q_.data() + r * uD, rope_.cos_at(pos), rope_.sin_at(pos), H, dh);
      rope_forward(k_rows_[r], rope_.cos_at(pos), rope_.sin_at(pos), H, dh);
    }
  }
}

// Segments of fewer rows go one row at a time: packing the keys would cost more than it saves.
constexpr int kMinCausalBlock = 8;

// Attention of every row of every segment, head by head, against the slots `var` says it reads
// (in the model: row i of segment s, at position pos0 + i, reads slots 0..pos0 + i of its own
// layer and sequence in `store`). The pool shares heads (a causal block) or rows and runs of
// heads (everything else): every row and head still runs the kernel it runs alone.
void Engine::attend(int l, std::span<const Segment> segs, const KvStore& store, const Variation& var) {
  const RowSite call = call_site(segs, l);
  row_todo_.clear();
  long long work = 0;
  for (const Segment& s : segs) {
    const RowSite site = segment_site(call, s);
    bool causal = true;  // every row reads its own layer and sequence under the causal mask
    for (int i = 0; i < s.n; ++i) {
      SlotsRead read = var.slots_read(site.row(i));
      if (call_window_.on()) window_read(s.row0 + i, read, var);
      reads_[static_cast<size_t>(s.row0 + i)] = read;
      row_pos_[static_cast<size_t>(s.row0 + i)] = s.pos0 + i;
      // A window's rows go one at a time (the block kernel reads slots 0..p): the same bytes.
      causal = causal && !call_window_.on() && read == SlotsRead{s.pos0 + i + 1, l, s.seq};
    }
    const Numerics num = var.attention_numerics(site);
    row_nums_[static_cast<size_t>(s.row0)] = num;  // the trace's, below
    // The kernel is chosen by the rows alone, never by whether a trace is attached or by the
    // thread count: the trace watches the computation the untraced run makes. Many rows at
    // consecutive positions under the causal mask, in float (an uncached pass or a prefill
    // chunk): rows in blocks, with the bytes of one row at a time (kernels_test checks this).
    if (s.n >= kMinCausalBlock && causal && !num.fp64) {
      attend_block(l, s, store, num);
      continue;
    }
    for (int i = 0; i < s.n; ++i) {
      row_nums_[static_cast<size_t>(s.row0 + i)] = num;
      row_todo_.push_back(s.row0 + i);
      work += static_cast<long long>(reads_[static_cast<size_t>(s.row0 + i)].n_slots) * config_.d_model * 2;
    }
  }
  attend_rows(store, work);
  for (const Segment& s : segs) {
    if (trace_) record_attention(s, l, store, row_nums_[static_cast<size_t>(s.row0)]);
    if (trace_ && trace_->cache_reads) record_cache_reads(s, l, store, s.row0 + s.n - 1);
  }
}

void Engine::window_read(int r, SlotsRead& read, const Variation& var) {
  const WindowSpec& w = call_window_;
  const int end = read.n_slots, n = window_reads(end, w.window);
  int* table = win_table_.data() + static_cast<size_t>(r) * win_stride_;
  for (int j = 0; j < n; ++j) {
    const int pos = window_position(j, end, n, w.sinks);
    table[j] = w.ring > 0 ? var.ring_slot(pos, w) : pos;
  }
  read.n_slots = n;
}

// Row r's rows of `view`: through its window table when a window is on (shift 0: view index j
// is table[j]'s slot), else as they are.
kernels::KvView Engine::read_view(kernels::KvView view, int r) const {
  if (!call_window_.on()) return view;
  view.table = win_table_.data() + static_cast<size_t>(r) * win_stride_;
  view.shift = 0;
  return view;
}

// A causal block of segment s, one head at a time; the pool shares the heads, each thread with
// its own packing scratch. The rows go in runs that read one view each (the quantized cache's
// flush boundaries; one run in a float cache).
void Engine::attend_block(int l, const Segment& s, const KvStore& store, const Numerics& num) {
  const int D = config_.d_model, dh = config_.d_head();
  const size_t uD = static_cast<size_t>(D);
  const long long work = static_cast<long long>(s.n) * (s.pos0 + s.n) * D * 2;
  for (int p0 = s.pos0; p0 < s.pos0 + s.n;) {
    const int n = std::min(s.pos0 + s.n, store.view_last_at(p0) + 1) - p0;
    const size_t r0 = static_cast<size_t>(s.row0 + p0 - s.pos0);
    parallel_for(pool_.get(), config_.n_head, work, [&](int h0, int h1, int thread) {
      float* scratch = causal_.data() + static_cast<size_t>(thread) * causal_size_;
      for (int h = h0; h < h1; ++h) {
        const size_t off = static_cast<size_t>(h) * dh;
        const kernels::KvView k = store.k_view_at(l, s.seq, p0).at(off), v = store.v_view_at(l, s.seq, p0).at(off);
        float* out = att_.data() + r0 * uD + off;
        const float* q = q_.data() + r0 * uD + off;
        if (num.mutant == kernels::Mutant::None)
          kernels::attention_forward_causal(out, D, scratch, q, D, k, v, p0, n, dh, num.scale);
        else
          kernels::attention_forward_causal_mutant(out, D, scratch, q, D, k, v, p0, n, dh, num.scale, num.mutant);
      }
    });
    p0 += n;
  }
}

// The rows of row_todo_ one at a time: all heads of a row at once, or one head at a time in
// double for fp64 numerics. With fewer rows than the pool has parts, each row's heads are cut
// into runs (a mutant's row stays whole: it singles out the last head).
void Engine::attend_rows(const KvStore& store, long long work) {
  const int H = config_.n_head;
  const int rows = static_cast<int>(row_todo_.size());
  const bool shared = pool_ != nullptr && work >= min_parallel_work();
  const int parts = shared ? ThreadPool::kPartsPerThread * pool_->size() : 1;
  bool whole = rows >= parts;  // on one thread, always: all heads side by side is faster
  for (int r : row_todo_)
    whole = whole || row_nums_[static_cast<size_t>(r)].mutant != kernels::Mutant::None;
  const int runs = whole ? 1 : std::min(H, (parts + rows - 1) / std::max(rows, 1));
  parallel_for(pool_.get(), rows * runs, work, [&](int begin, int end, int thread) {
    float* probs = probs_.data() + static_cast<size_t>(thread) * H * config_.max_seq_len;
    for (int item = begin; item < end; ++item) {
      const int run = item % runs;
      attend_row(row_todo_[static_cast<size_t>(item / runs)], H * run / runs, H * (run + 1) / runs, store, probs);
    }
  });
}

// Heads [h0, h1) of row r; probs: (H, max_seq_len) of this thread's own.
void Engine::attend_row(int r, int h0, int h1, const KvStore& store, float* probs) {
  const Config& c = config_;
  const int H = c.n_head, dh = c.d_head();
  const size_t uD = static_cast<size_t>(c.d_model), off = static_cast<size_t>(h0) * dh;
  const size_t ur = static_cast<size_t>(r);
  const SlotsRead& read = reads_[ur];
  const Numerics& num = row_nums_[ur];
  float* out = att_.data() + ur * uD + off;
  const float* q = q_.data() + ur * uD + off;
  if (read.n_slots == 0) {
    std::fill_n(out, (h1 - h0) * dh, 0.0f);
    return;
  }
  const int pos = row_pos_[ur];
  const kernels::KvView k = read_view(store.k_view_at(read.layer, read.seq, pos), r).at(off);
  const kernels::KvView v = read_view(store.v_view_at(read.layer, read.seq, pos), r).at(off);
  if (!num.fp64 && num.mutant != kernels::Mutant::None) {
    kernels::attention_forward_heads_mutant(out, probs, c.max_seq_len, q, k, v, read.n_slots, H, dh, num.scale,
                                            num.mutant);
  } else if (!num.fp64) {
    kernels::attention_forward_heads(out, probs + off / dh * c.max_seq_len, c.max_seq_len, q, k, v, read.n_slots,
                                     h1 - h0, dh, num.scale);
  } else {
    for (int h = 0; h < h1 - h0; ++h) {
      const size_t oh = static_cast<size_t>(h) * dh;
      kernels::attention_forward_f64(out + oh, probs, q + oh, k.at(oh), v.at(oh), read.n_slots, dh, num.scale);
    }
  }
}

// The trace of segment s's attention at layer l, head by head: q, k and v as projected, the
// output the kernel above wrote (att_), and the probabilities. The block and all-heads kernels
// keep their probabilities to themselves, so those are computed again for the traced rows by the
// one-row kernel, whose bytes the block kernels reproduce (kernels_test); the output recorded is
// always the kernel's own, so a kernel that parts is seen where it parts.
void Engine::record_attention(const Segment& s, int l, const KvStore& store, const Numerics& num) {
  const Config& c = config_;
  const int D = c.d_model, H = c.n_head, dh = c.d_head();
  const size_t uD = static_cast<size_t>(D);
  std::vector<float> scratch(static_cast<size_t>(dh));
  for (int h = 0; h < H; ++h) {
    const size_t off = static_cast<size_t>(h) * dh;
    for (int i = 0; i < s.n; ++i) {
      const int pos = s.pos0 + i;
      if (!trace_->wants(pos)) continue;
      const size_t r = static_cast<size_t>(s.row0 + i);
      const SlotsRead& read = reads_[r];
      const float* q = q_.data() + r * uD + off;
      if (read.n_slots > 0) {
        const kernels::KvView kb = read_view(store.k_view_at(read.layer, read.seq, pos), static_cast<int>(r)).at(off);
        const kernels::KvView vb = read_view(store.v_view_at(read.layer, read.seq, pos), static_cast<int>(r)).at(off);
        if (num.fp64)
          kernels::attention_forward_f64(scratch.data(), probs_.data(), q, kb, vb, read.n_slots, dh, num.scale);
        else if (num.mutant == kernels::Mutant::SoftmaxReversed)  // the mutant's own probabilities
          kernels::attention_forward_mutant(scratch.data(), probs_.data(), q, kb, vb, read.n_slots, dh, num.scale,
                                            num.mutant, h == H - 1);
        else
          attention_forward(scratch.data(), probs_.data(), q, kb, vb, read.n_slots, dh, num.scale);
      }
      record(TraceKind::Q, s, l, h, pos, q, dh);
      record(TraceKind::K, s, l, h, pos, k_rows_[r] + off, dh);
      record(TraceKind::V, s, l, h, pos, v_rows_[r] + off, dh);
      record(TraceKind::Probs, s, l, h, pos, probs_.data(), read.n_slots);
      record(TraceKind::AttnOut, s, l, h, pos, att_.data() + r * uD + off, dh);
    }
  }
}

// The rows below the segment's end as attention found them in the slab its last row read (with
// a window, the positions that row read, under their own positions).
void Engine::record_cache_reads(const Segment& s, int l, const KvStore& store, int last) {
  const int H = config_.n_head, dh = config_.d_head();
  const SlotsRead& read = reads_[static_cast<size_t>(last)];
  const kernels::KvView kb = read_view(store.k_view_at(read.layer, read.seq, s.pos0 + s.n - 1), last);
  const kernels::KvView vb = read_view(store.v_view_at(read.layer, read.seq, s.pos0 + s.n - 1), last);
  const int end = s.pos0 + s.n, n = call_window_.on() ? read.n_slots : end;
  for (int j = 0; j < n; ++j) {
    const int slot = call_window_.on() ? window_position(j, end, n, call_window_.sinks) : j;
    if (!trace_->wants(slot)) continue;
    for (int h = 0; h < H; ++h) {
      const size_t off = static_cast<size_t>(h) * dh;
      record(TraceKind::KRead, s, l, h, slot, kb.row(j) + off, dh);
      trace_->records.back().from_seq = s.pass == Pass::Uncached ? trace_->seq : read.seq;
      record(TraceKind::VRead, s, l, h, slot, vb.row(j) + off, dh);
      trace_->records.back().from_seq = s.pass == Pass::Uncached ? trace_->seq : read.seq;
    }
  }
}

namespace {

// The pointwise and per-row kernels on the pool: rows, or runs of kChunk elements (whole
// vectors), each computed as the kernel computes it on the whole array.
constexpr int kChunk = 256;

using LayerNormFn = void (*)(float*, const float*, const float*, const float*, float, int, int);

void layernorm_rows(ThreadPool* pool, LayerNormFn layernorm, float* out, const float* inp, const float* weight,
                    const float* bias, float eps, int T, int C) {
  parallel_for(pool, T, 8LL * T * C, [&](int t0, int t1, int) {
    const size_t at = static_cast<size_t>(t0) * C;
    layernorm(out + at, inp + at, weight, bias, eps, t1 - t0, C);
  });
}

template <typename Pointwise>
void in_chunks(ThreadPool* pool, int N, long long cost, Pointwise fn) {
  parallel_for(pool, (N + kChunk - 1) / kChunk, cost * N, [&](int c0, int c1, int) {
    fn(c0 * kChunk, std::min(N, c1 * kChunk));
  });
}

}  // namespace

void Engine::run(std::span<const Segment> segs, const int* tokens, int N, KvStore& store, float* logits,
                 bool all_rows, const Variation& var, const WindowSpec& win) {
  call_window_ = win;
  const Config& c = config_;
  const int D = c.d_model, F = c.d_ff, L = c.n_layer;
  const size_t uD = static_cast<size_t>(D);
  const bool all_decode = std::all_of(segs.begin(), segs.end(), [](const Segment& s) { return s.pass == Pass::Decode; });
  const bool library = backend_ == Backend::Eigen || var.library_products(all_decode);
  const LayerNormFn ln_fn = var.reversed_layernorm(all_decode) ? kernels::layernorm_forward_reversed : layernorm_forward;
  ThreadPool* pool = pool_.get();
  const auto block_layernorm = [&](float* out, const float* inp, const float* w, const float* b, float eps, int T, int C) {
    layernorm_rows(pool, ln_fn, out, inp, w, b, eps, T, C);
  };
  const auto add_residual = [&](float* x, const float* y, int n) {
    in_chunks(pool, n, 1, [&](int i0, int i1) { residual_forward(x + i0, x + i0, y + i0, i1 - i0); });
  };

  seq_rows_.clear();
  for (const Segment& s : segs) seq_rows_.push_back(SeqRows{s.seq, s.pos0, s.n});
  for (int r = 0; r < N; ++r)
    std::memcpy(x_.data() + r * uD, model_.weights.tok_emb.data() + static_cast<size_t>(tokens[r]) * uD, sizeof(float) * uD);

  for (int l = 0; l < L; ++l) {
    const LayerWeights& lw = model_.weights.layers[static_cast<size_t>(l)];
    const Layer& w = layers_[static_cast<size_t>(l)];
    block_layernorm(ln_.data(), x_.data(), lw.ln1_w.data(), lw.ln1_b.data(), static_cast<float>(c.ln_eps), N, D);
    if (trace_) record_rows(TraceKind::Ln1, segs, l, ln_.data(), D);
    project_qkv(l, segs, N, store, library, var);
    store.begin_layer(l, seq_rows_);
    attend(l, segs, store, var);
    store.end_layer(l, seq_rows_);
    linear(y_.data(), att_.data(), w.o, N, library);
    add_residual(x_.data(), y_.data(), N * D);

    block_layernorm(ln_.data(), x_.data(), lw.ln2_w.data(), lw.ln2_b.data(), static_cast<float>(c.ln_eps), N, D);
    if (trace_) record_rows(TraceKind::Ln2, segs, l, ln_.data(), D);
    linear(h_.data(), ln_.data(), w.fc_in, N, library);
    in_chunks(pool, N * F, 16, [&](int i0, int i1) { gelu_forward(h_.data() + i0, h_.data() + i0, i1 - i0); });
    if (const int parts = var.fc_out_k_parts(threads_); parts > 1 && !library)
      split_k_matmul(y_.data(), h_.data(), w.fc_out.weight, w.fc_out.bias, N, w.fc_out.C, w.fc_out.OC, parts);
    else
      linear(y_.data(), h_.data(), w.fc_out, N, library);
    if (trace_) record_rows(TraceKind::Mlp, segs, l, y_.data(), D);
    add_residual(x_.data(), y_.data(), N * D);

    if (trace_) {
      for (const Segment& s : segs)
        for (int i = 0; i < s.n; ++i)
          if (trace_->wants(s.pos0 + i))
            record(TraceKind::BlockOut, s, l, -1, s.pos0 + i, x_.data() + static_cast<size_t>(s.row0 + i) * uD, D);
    }
  }

  const float eps = static_cast<float>(c.ln_eps);
  const float* lnf_w = model_.weights.lnf_w.data();
  const float* lnf_b = model_.weights.lnf_b.data();
  if (all_rows) {
    layernorm_rows(pool, layernorm_forward, ln_.data(), x_.data(), lnf_w, lnf_b, eps, N, D);
    if (trace_) record_rows(TraceKind::FinalLn, segs, L - 1, ln_.data(), D);
    linear(logits, ln_.data(), head_, N, library);
  } else {
    const RowSite call = call_site(segs, L - 1);
    for (size_t i = 0; i < segs.size(); ++i) {
      const Segment& s = segs[i];
      // The segment's last row (a fault may name another), kept inside the call's rows.
      const int row = std::clamp(s.row0 + var.logits_row(segment_site(call, s)), 0, N - 1);
      layernorm_forward(ln_.data() + i * uD, x_.data() + static_cast<size_t>(row) * uD, lnf_w, lnf_b, eps, 1, D);
      if (trace_ && trace_->wants(s.pos0 + s.n - 1)) {
        record(TraceKind::FinalLn, s, L - 1, -1, s.pos0 + s.n - 1, ln_.data() + i * uD, D);
        for (const Segment& from : segs)
          if (row >= from.row0 && row < from.row0 + from.n) {
            trace_->records.back().from_seq = from.pass == Pass::Uncached ? trace_->seq : from.seq;
            trace_->records.back().from_pos = from.pos0 + (row - from.row0);
            trace_->records.back().from_row = row;
          }
      }
    }
    linear(logits, ln_.data(), head_, static_cast<int>(segs.size()), library);
  }
  if (trace_) ++trace_->calls;
}

// ---- public entry points ----------------------------------------------------------------------

void Engine::forward_uncached(std::span<const int> tokens, std::span<float> logits, bool all_rows, KvRows* kv) {
  check_tokens(tokens);
  const int T = static_cast<int>(tokens.size());
  if (T > config_.max_seq_len)
    fail("forward: {} tokens exceed the model's max_seq_len {}", T, config_.max_seq_len);
  const size_t need = static_cast<size_t>(all_rows ? T : 1) * config_.vocab_size;
  if (logits.size() < need) fail("forward: logits buffer holds {} floats, needs {}", logits.size(), need);
  // Nothing survives between calls: positions restart at 0 and only rows written now are read.
  const Segment seg{0, 0, T, 0, Pass::Uncached};
  if (quant_scratch_) {
    quant_scratch_->reset();
    run({&seg, 1}, tokens.data(), T, *quant_scratch_, logits.data(), all_rows, model_variation(), WindowSpec{});
    if (!kv) return;
    // The rows as a cached call of T tokens leaves them: what its next read would see.
    quant_scratch_->advance(0, T);
    *kv = KvRows{config_.n_layer, config_.n_head, T, config_.d_head(), {}, {}, {}};
    quant_scratch_->rows(0, kv->k, kv->v);
    return;
  }
  // Full recompute's window: slot = position in the scratch rows. Its width is the one point
  // full recompute asks of the active fault (variation.h: recompute_window).
  const WindowSpec win = window_.on() ? WindowSpec{variation_->recompute_window(window_.window), window_.sinks, 0}
                                      : WindowSpec{};
  run({&seg, 1}, tokens.data(), T, scratch_kv_, logits.data(), all_rows, model_variation(), win);
  if (kv) {
    const Config& c = config_;
    const int H = c.n_head, dh = c.d_head();
    *kv = KvRows{c.n_layer, H, T, dh, {}, {}, {}};
    kv->k.resize(static_cast<size_t>(c.n_layer) * H * T * dh);
    kv->v.resize(kv->k.size());
    for (int l = 0; l < c.n_layer; ++l)
      for (int h = 0; h < H; ++h)
        for (int t = 0; t < T; ++t) {
          const size_t src = static_cast<size_t>(t) * c.d_model + static_cast<size_t>(h) * dh;
          const size_t dst = ((static_cast<size_t>(l) * H + h) * T + t) * dh;
          std::copy_n(scratch_kv_.k_slab(l, 0) + src, dh, kv->k.data() + dst);
          std::copy_n(scratch_kv_.v_slab(l, 0) + src, dh, kv->v.data() + dst);
        }
  }
}

std::vector<float> Engine::forward_uncached(std::span<const int> tokens, bool all_rows, KvRows* kv) {
  std::vector<float> logits(static_cast<size_t>(all_rows ? tokens.size() : 1) * config_.vocab_size);
  forward_uncached(tokens, logits, all_rows, kv);
  return logits;
}

namespace {
// A cached segment's pass: verify if the call is Engine::verify, else by the cursor and length.
Pass cached_pass(int cursor, int n, bool verify) {
  if (verify) return Pass::Verify;
  return cursor == 0 ? Pass::Prefill : (n == 1 ? Pass::Decode : Pass::Resume);
}
}  // namespace

// The chunks were checked (check_chunks) by the caller, before any group of them ran.
void Engine::run_cached(std::span<const Chunk> chunks, float* logits, bool all_rows, bool verify) {
  if (window_.on()) {
    for (const Chunk& ch : chunks)
      if (static_cast<int>(ch.tokens.size()) > ring_piece(cache_.cursor(ch.seq))) return run_pieces(chunks, logits, all_rows, verify);
  }
  if (paged_) {
    keep_.clear();
    for (const Chunk& ch : chunks) keep_.push_back(ch.seq);
    make_room(chunks, keep_, verify);
  }
  segs_.clear();
  int N = 0;
  for (const Chunk& ch : chunks) {
    const int cursor = store().cursor(ch.seq);
    const int n = static_cast<int>(ch.tokens.size());
    segs_.push_back(Segment{ch.seq, cursor, n, N, cached_pass(cursor, n, verify)});
    std::copy(ch.tokens.begin(), ch.tokens.end(), tokens_.begin() + N);
    N += n;
  }
  run(segs_, tokens_.data(), N, store(), logits, all_rows, *variation_, window_);
  for (const Segment& s : segs_) {
    if (paged_)
      paged_->advance(s.seq, {tokens_.data() + s.row0, static_cast<size_t>(s.n)});
    else if (quant_) {
      quant_->advance(s.seq, s.n);
      auto& t = quant_tokens_[static_cast<size_t>(s.seq)];
      t.insert(t.end(), tokens_.begin() + s.row0, tokens_.begin() + s.row0 + s.n);
    }
    else
      cache_.advance(s.seq, s.n);
  }
}

int Engine::ring_piece(int cursor) const {
  return std::max(window_.sinks, window_low(cursor, window_)) + window_.ring - cursor;
}

// A call whose chunks would overwrite ring slots they still read: each chunk in pieces of
// ring_piece rows, one after another. Rows are computed alike in any grouping (the kernels are
// batch-invariant), so the pieces give the bytes one pass would. all_rows comes with one chunk.
void Engine::run_pieces(std::span<const Chunk> chunks, float* logits, bool all_rows, bool verify) {
  const size_t V = static_cast<size_t>(config_.vocab_size);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& ch = chunks[i];
    for (size_t done = 0; done < ch.tokens.size();) {
      const size_t n = std::min(ch.tokens.size() - done, static_cast<size_t>(ring_piece(cache_.cursor(ch.seq))));
      const Chunk piece{ch.seq, ch.tokens.subspan(done, n)};
      run_cached({&piece, 1}, logits + (all_rows ? done : i) * V, all_rows, verify);
      done += n;
    }
  }
}

// The slots a call writes per sequence are asked of the variation, layer by layer (a fault may
// write elsewhere than the cursor), so that reserve makes exactly those blocks writable.
void Engine::make_room(std::span<const Chunk> chunks, std::span<const int> keep, bool verify) {
  paged_writes(chunks, verify);
  if (paged_->ready(writes_)) {  // nothing to allocate, copy or recompute: most decodes
    for (const Chunk& ch : chunks) paged_->note_use(ch.seq);
    return;
  }
  const std::vector<SlotWrites> writes = writes_;  // a recompute below asks paged_writes again
  paged_->check_fits(writes, keep);  // before anything changes
  for (const Chunk& ch : chunks)
    if (paged_->preempted(ch.seq)) recompute(ch.seq, keep);
  paged_->reserve(writes, keep);
  for (const Chunk& ch : chunks) paged_->note_use(ch.seq);
}

void Engine::paged_writes(std::span<const Chunk> chunks, bool verify) {
  std::vector<Segment>& segs = write_segs_;
  segs.clear();
  int N = 0;
  for (const Chunk& ch : chunks) {
    const int n = static_cast<int>(ch.tokens.size());
    const int cursor = paged_->cursor(ch.seq);
    segs.push_back(Segment{ch.seq, cursor, n, N, cached_pass(cursor, n, verify)});
    N += n;
  }
  std::vector<SlotWrites>& writes = writes_;
  writes.clear();
  for (const Segment& s : segs) {
    SlotWrites w{s.seq, s.pos0, s.pos0 + s.n - 1};
    for (int l = 0; l < config_.n_layer; ++l) {
      const RowSite site = segment_site(call_site(segs, l), s);
      for (int i = 0; i < s.n; ++i) {
        const int slot = variation_->cache_write(site.row(i)).slot;
        w.first = std::min(w.first, slot);
        w.last = std::max(w.last, slot);
      }
    }
    writes.push_back(w);
  }
}

// A preempted sequence's rows again: its tokens as one prefill chunk through the cached path,
// after the longest prefix the cache still holds (the last token always computed). Its logits
// go nowhere and the trace does not see it: the rows are the ones its first computation wrote.
void Engine::make_resident(int seq) {
  if (!paged_ || !paged_->preempted(seq)) return;
  const int keep[] = {seq};
  recompute(seq, keep);
}

void Engine::recompute(int seq, std::span<const int> keep) {
  const std::vector<int> tokens = paged_->take_for_recompute(seq);
  if (tokens.empty()) return;
  const int hit = paged_->map_prefix(seq, tokens, static_cast<int>(tokens.size()) - 1);
  Trace* const trace = trace_;
  trace_ = nullptr;
  const Chunk rest{seq, std::span<const int>(tokens).subspan(static_cast<size_t>(hit))};
  try {
    make_room({&rest, 1}, keep);
    segs_.clear();
    segs_.push_back(Segment{seq, hit, static_cast<int>(rest.tokens.size()), 0, hit == 0 ? Pass::Prefill : Pass::Resume});
    std::copy(rest.tokens.begin(), rest.tokens.end(), tokens_.begin());
    run(segs_, tokens_.data(), segs_[0].n, *paged_, recompute_logits_.data(), false, *variation_, WindowSpec{});
    paged_->advance(seq, rest.tokens);
  } catch (...) {
    trace_ = trace;
    throw;
  }
  trace_ = trace;
}

void Engine::forward_cached(int seq, std::span<const int> tokens, std::span<float> logits, bool all_rows) {
  const size_t need = (all_rows ? tokens.size() : 1) * static_cast<size_t>(config_.vocab_size);
  if (logits.size() < need) fail("forward: logits buffer holds {} floats, needs {}", logits.size(), need);
  const Chunk chunk{seq, tokens};
  check_chunks({&chunk, 1});
  run_cached({&chunk, 1}, logits.data(), all_rows);
}

void Engine::verify(int seq, std::span<const int> tokens, std::span<float> logits) {
  const size_t need = tokens.size() * static_cast<size_t>(config_.vocab_size);
  if (logits.size() < need) fail("verify: logits buffer holds {} floats, needs {}", logits.size(), need);
  const Chunk chunk{seq, tokens};
  check_chunks({&chunk, 1});
  run_cached({&chunk, 1}, logits.data(), true, true);
}

std::vector<float> Engine::verify(int seq, std::span<const int> tokens) {
  std::vector<float> logits(tokens.size() * static_cast<size_t>(config_.vocab_size));
  verify(seq, tokens, logits);
  return logits;
}

std::vector<float> Engine::forward_cached(int seq, std::span<const int> tokens, bool all_rows) {
  std::vector<float> logits((all_rows ? tokens.size() : 1) * static_cast<size_t>(config_.vocab_size));
  forward_cached(seq, tokens, logits, all_rows);
  return logits;
}

void Engine::check_chunks(std::span<const Chunk> chunks) const {
  if (chunks.size() > static_cast<size_t>(batch()))
    fail("forward: {} chunks for a batch of {} sequences", chunks.size(), batch());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const Chunk& ch = chunks[i];
    check_tokens(ch.tokens);
    check_live(ch.seq);
    if (paged_)
      paged_->check_room(ch.seq, static_cast<int>(ch.tokens.size()));
    else if (quant_)
      quant_->check_room(ch.seq, static_cast<int>(ch.tokens.size()));
    else
      cache_.check_room(ch.seq, static_cast<int>(ch.tokens.size()));
    for (size_t j = 0; j < i; ++j)
      if (chunks[j].seq == ch.seq) fail("forward: sequence {} appears twice in one batch", ch.seq);
  }
}

void Engine::forward_batch(std::span<const Chunk> chunks, std::span<float> logits) {
  const size_t V = static_cast<size_t>(config_.vocab_size);
  if (logits.size() < chunks.size() * V)
    fail("forward: logits buffer holds {} floats, needs {}", logits.size(), chunks.size() * V);
  // Everything is checked before the first group runs: a call that fails leaves every cursor
  // (and every cache row below a cursor) as it was.
  check_chunks(chunks);
  size_t total = 0;
  for (const Chunk& ch : chunks) total += ch.tokens.size();
  // A call of several groups must fit the pool as a whole before its first group runs; a call
  // of one group (every decode) is checked by run_cached's make_room, before it changes anything.
  if (paged_ && total > static_cast<size_t>(rows_)) {
    keep_.clear();
    for (const Chunk& ch : chunks) keep_.push_back(ch.seq);
    paged_writes(chunks);
    if (!paged_->ready(writes_)) paged_->check_fits(writes_, keep_);
  }
  // Groups of whole chunks that fit the scratch rows (every chunk fits: capacity <= rows_).
  size_t first = 0;
  while (first < chunks.size()) {
    size_t last = first, rows = 0;
    while (last < chunks.size() && (last == first || rows + chunks[last].tokens.size() <= static_cast<size_t>(rows_)))
      rows += chunks[last++].tokens.size();
    run_cached(chunks.subspan(first, last - first), logits.data() + first * V, false);
    first = last;
  }
}

KvRows Engine::cache_rows(int seq) const {
  check_live(seq);
  const_cast<Engine&>(*this).make_resident(seq);  // logically const: see engine.h
  const Config& c = config_;
  KvRows kv{c.n_layer, c.n_head, cursor(seq), c.d_head(), {}, {}, {}};
  if (quant_) {
    quant_->rows(seq, kv.k, kv.v);
    return kv;
  }
  const size_t dh = static_cast<size_t>(kv.d_head);
  kv.k.resize(static_cast<size_t>(kv.n_layer) * kv.n_head * kv.T * dh);
  kv.v.resize(kv.k.size());
  // With a window: the positions still held, each read from the slot the cached path reads.
  if (window_.on())
    for (int s = 0; s < kv.T; ++s) kv.held.push_back(cache_.holds(seq, s) ? 1 : 0);
  for (int l = 0; l < kv.n_layer; ++l) {
    const kernels::KvView kl = store().k_view(l, seq), vl = store().v_view(l, seq);
    for (int h = 0; h < kv.n_head; ++h)
      for (int s = 0; s < kv.T; ++s) {
        if (!kv.holds(s)) continue;
        const int slot = window_.on() ? variation_->ring_slot(s, window_) : s;
        const size_t at = ((static_cast<size_t>(l) * kv.n_head + h) * kv.T + s) * dh;
        const float* k = kl.row(slot) + static_cast<size_t>(h) * dh;
        const float* v = vl.row(slot) + static_cast<size_t>(h) * dh;
        std::copy_n(k, dh, kv.k.begin() + static_cast<long>(at));
        std::copy_n(v, dh, kv.v.begin() + static_cast<long>(at));
      }
  }
  return kv;
}

const KvCache& Engine::cache() const {
  if (quant_) fail("the quantized KV cache has no float slabs: use cache_rows or quantized()");
  if (paged_) fail("the paged KV cache has no contiguous slabs: use paged(), cache_rows or poison_unused");
  return cache_;
}

KvCache& Engine::cache() {
  if (quant_) fail("the quantized KV cache has no float slabs: use cache_rows or quantized()");
  if (paged_) fail("the paged KV cache has no contiguous slabs: use paged(), cache_rows or poison_unused");
  return cache_;
}

KvStore& Engine::store() {
  if (paged_) return *paged_;
  if (quant_) return *quant_;
  return cache_;
}

const KvStore& Engine::store() const {
  if (paged_) return *paged_;
  if (quant_) return *quant_;
  return cache_;
}

// A new count makes a new pool and per-thread scratch (probabilities and the causal kernel's
// packing): nothing is allocated per call.
void Engine::set_threads(int threads) {
  const int n = resolve_threads(threads);
  if (n == threads_ && !probs_.empty()) return;
  const Config& c = config_;
  pool_ = n > 1 ? std::make_unique<ThreadPool>(n) : nullptr;
  threads_ = n;
  probs_.assign(static_cast<size_t>(n) * c.n_head * c.max_seq_len, 0.0f);
  causal_size_ = (kernels::attention_causal_scratch(c.max_seq_len, c.d_head()) + 15) / 16 * 16;  // each on cache lines
  causal_.assign(static_cast<size_t>(n) * causal_size_, 0.0f);
}

void Engine::set_fault(Fault fault) {
  if (!window_.on() && acts_on_window(fault))
    fail("fault '{}' acts on the sliding window: give the engine a window (window > sinks)", to_string(fault));
  if (layout_ == KvLayout::Contiguous && acts_on_paged(fault))
    fail("fault '{}' acts on the paged cache: use the paged layout", to_string(fault));
  if (layout_ == KvLayout::Paged && acts_on_contiguous_only(fault))
    fail("fault '{}' acts on the contiguous cache's operations: use the contiguous layout", to_string(fault));
  if (quant_ && acts_on_contiguous_only(fault))
    fail("fault '{}' acts on the float cache's operations: use kv quant f32", to_string(fault));
  fault_ = fault;
  variation_ = &variation(fault);
  if (paged_) paged_->set_variation(variation_);
  if (quant_) quant_->set_variation(variation_);
}

KvLayout Engine::layout() const { return layout_; }

int Engine::cursor(int seq) const { return store().cursor(seq); }

bool Engine::freed(int seq) const {
  store().cursor(seq);  // range check
  return freed_[static_cast<size_t>(seq)] != 0;
}

void Engine::check_live(int seq) const {
  if (freed(seq)) fail("sequence {} is freed: submit a prompt or reset it first", seq);
}

void Engine::reset() {
  if (paged_)
    paged_->reset();
  else if (quant_)
    for (int seq = 0; seq < batch(); ++seq) reset(seq);
  else
    cache_.reset();
  std::fill(freed_.begin(), freed_.end(), 0);
}

void Engine::reset(int seq) {
  if (paged_) {
    paged_->reset(seq);
  } else if (quant_) {
    quant_->reset(seq);
    quant_tokens_[static_cast<size_t>(seq)].clear();
  }
  else
    cache_.reset(seq);
  freed_[static_cast<size_t>(seq)] = 0;
}

void Engine::start_request(int seq) {
  store().cursor(seq);  // range check
  if (paged_)
    paged_->reset(seq);
  else if (quant_)
    reset(seq);
  else
    variation_->start_request(cache_, seq);
  freed_[static_cast<size_t>(seq)] = 0;
}

void Engine::start_request() {
  for (int seq = 0; seq < batch(); ++seq) start_request(seq);
}

void Engine::truncate(int seq, int p) {
  check_live(seq);
  if (paged_) {
    paged_->truncate(seq, p);
  } else if (quant_) {
    const int from = quant_->recompute_from(seq, p);
    quant_->truncate(seq, from);  // refuses a bad p before anything changes
    std::vector<int>& t = quant_tokens_[static_cast<size_t>(seq)];
    const std::vector<int> rest(t.begin() + from, t.begin() + p);
    t.resize(static_cast<size_t>(from));
    recompute_quantized(seq, rest);
  } else
    variation_->truncate(cache_, seq, p);
}

void Engine::rollback(int seq, int keep) {
  check_live(seq);
  if (paged_ || quant_)
    truncate(seq, keep);  // their truncate is the rollback (the quantized one recomputes a cut group)
  else
    variation_->rollback(cache_, seq, keep);
}

void Engine::fork(int src, int dst, int prefix_len) {
  check_live(src);
  store().cursor(dst);  // range check before anything changes
  if (paged_) {
    paged_->check_fork(src, dst, prefix_len);  // a refused fork recomputes nothing
    make_resident(src);
    paged_->fork(src, dst, prefix_len);
    paged_->note_use(src);
    paged_->note_use(dst);
  } else if (quant_) {
    const int from = quant_->recompute_from(src, prefix_len);
    quant_->fork(src, dst, from);  // refuses a bad fork before anything changes
    const std::vector<int>& t = quant_tokens_[static_cast<size_t>(src)];
    quant_tokens_[static_cast<size_t>(dst)].assign(t.begin(), t.begin() + from);
    recompute_quantized(dst, std::vector<int>(t.begin() + from, t.begin() + prefix_len));
  } else {
    variation_->fork(cache_, src, dst, prefix_len);
  }
  freed_[static_cast<size_t>(dst)] = 0;
}

int Engine::submit(int seq, std::span<const int> prompt, std::span<float> logits) {
  store().cursor(seq);  // range check
  check_tokens(prompt);
  check_positions(seq, 0, static_cast<int>(prompt.size()), capacity_);  // the prompt from position 0
  if (logits.size() < static_cast<size_t>(config_.vocab_size))
    fail("forward: logits buffer holds {} floats, needs {}", logits.size(), config_.vocab_size);
  start_request(seq);
  if (!paged_) {
    forward_cached(seq, prompt, logits);
    return 0;
  }
  const int hit = paged_->map_prefix(seq, prompt, static_cast<int>(prompt.size()) - 1);
  paged_->count_hit(hit);
  forward_cached(seq, prompt.subspan(static_cast<size_t>(hit)), logits);
  return hit;
}

void Engine::free(int seq) {
  // A second free is refused like every other operation on a freed sequence: a caller that
  // frees twice has lost track of its sequences, which is worth one line.
  check_live(seq);
  reset(seq);
  freed_[static_cast<size_t>(seq)] = 1;
}

void Engine::poison_unused(float value) {
  if (paged_) {
    paged_->poison_unused(value);
    return;
  }
  for (int seq = 0; seq < batch(); ++seq)
    if (quant_)
      quant_->poison_unused(seq, value);
    else
      cache_.poison_unused(seq, value);
}

void Engine::decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) {
  if (seqs.size() != tokens.size()) fail("decode: {} sequences but {} tokens", seqs.size(), tokens.size());
  if (seqs.size() > static_cast<size_t>(batch()))
    fail("decode: {} sequences for a batch of {} sequences", seqs.size(), batch());
  decode_chunks_.clear();  // reserved for batch() chunks: no allocation
  for (size_t i = 0; i < seqs.size(); ++i) decode_chunks_.push_back(Chunk{seqs[i], tokens.subspan(i, 1)});
  forward_batch(decode_chunks_, logits);
}

}  // namespace miniinfer
