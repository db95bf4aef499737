// LlamaCpp over llama.h. Two llama_contexts share the model: ctx_ holds the sequences (one
// unified KV buffer, so a prefix fork is a metadata copy: across separate per-sequence buffers
// llama_memory_seq_cp copies only whole sequences), recompute_ is the "fresh memory" of a
// full recompute. llama.cpp logs through one global callback; we keep its last line for errors.
#include "llamacpp/llamacpp_engine.h"

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/error.h"

namespace miniinfer {

namespace {

std::mutex log_mutex;
std::string last_log_line;  // llama.cpp's last warning or error, for our one-line errors

void log_callback(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
    std::lock_guard lock(log_mutex);
    last_log_line = text;
    while (!last_log_line.empty() && (last_log_line.back() == '\n' || last_log_line.back() == ' '))
      last_log_line.pop_back();
  }
  static const bool verbose = std::getenv("MINIINFER_LLAMACPP_LOG") != nullptr;
  if (verbose) std::fputs(text, stderr);
}

std::string last_log() {
  std::lock_guard lock(log_mutex);
  return last_log_line.empty() ? "no message" : last_log_line;
}

// Once per process: the log hook, the backend, the CPU backend plugin best for this CPU.
void init_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(log_callback, nullptr);
#ifdef MINIINFER_LLAMACPP_BACKEND_DIR
    ggml_backend_load_all_from_path(MINIINFER_LLAMACPP_BACKEND_DIR);
#else
    ggml_backend_load_all();
#endif
    llama_backend_init();
  });
}

void copy_out(const ggml_tensor* t, std::vector<float>& out) {
  const int64_t n = ggml_nelements(t);
  out.resize(static_cast<size_t>(n));
  std::vector<char> raw(ggml_nbytes(t));
  ggml_backend_tensor_get(t, raw.data(), 0, raw.size());
  // Walk ne in order with the tensor's strides (views are not always contiguous).
  size_t i = 0;
  for (int64_t i3 = 0; i3 < t->ne[3]; ++i3)
    for (int64_t i2 = 0; i2 < t->ne[2]; ++i2)
      for (int64_t i1 = 0; i1 < t->ne[1]; ++i1)
        for (int64_t i0 = 0; i0 < t->ne[0]; ++i0) {
          const char* p = raw.data() + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
          if (t->type == GGML_TYPE_F32) {
            std::memcpy(&out[i++], p, sizeof(float));
          } else {
            ggml_fp16_t h;
            std::memcpy(&h, p, sizeof(h));
            out[i++] = ggml_fp16_to_fp32(h);
          }
        }
}

// The per-layer tensors a trace keeps: "NAME-LAYER" exactly (not the views ggml derives from
// them, such as "Qcur-0 (reshaped)").
bool traced(const char* name) {
  static const char* const kNames[] = {"attn_norm", "Qcur",     "Kcur",    "Vcur",  "kq_soft_max",
                                       "kqv_out",   "ffn_norm", "ffn_out", "l_out"};
  const char* dash = std::strrchr(name, '-');
  if (!dash || dash[1] == '\0') return false;
  for (const char* p = dash + 1; *p; ++p)
    if (*p < '0' || *p > '9') return false;
  const size_t len = static_cast<size_t>(dash - name);
  for (const char* k : kNames)
    if (std::strlen(k) == len && std::strncmp(name, k, len) == 0) return true;
  return false;
}

}  // namespace

const char* to_string(KvType type) {
  switch (type) {
    case KvType::F16: return "f16";
    case KvType::F32: return "f32";
    case KvType::Q8_0: return "q8_0";
    case KvType::Q4_0: return "q4_0";
  }
  return "f16";
}

const LayerTensor* LlamaTrace::last(const std::string& name) const {
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it)
    if (it->name == name) return &*it;
  return nullptr;
}

bool LlamaCpp::eval_callback(ggml_tensor* t, bool ask, void* self) {
  auto* engine = static_cast<LlamaCpp*>(self);
  if (!engine->trace_) return !ask;  // ask: "do you want this one?" no; else: keep going
  const bool want = traced(t->name) && (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16);
  if (ask) return want;
  if (want) {
    LayerTensor rec;
    rec.name = t->name;
    for (int d = 0; d < 4; ++d) rec.ne[static_cast<size_t>(d)] = t->ne[d];
    copy_out(t, rec.data);
    engine->trace_->tensors.push_back(std::move(rec));
  }
  return true;
}

LlamaCpp::LlamaCpp(const std::string& gguf_path, LlamaCppOptions options)
    : options_(options), path_(gguf_path) {
  init_backend();
  if (options_.n_seq < 1) fail("llama.cpp engine: n_seq must be at least 1, got {}", options_.n_seq);
  if (options_.threads < 1) fail("llama.cpp engine: threads must be at least 1, got {}", options_.threads);
  if (options_.poll < -1 || options_.poll > 100)
    fail("llama.cpp engine: poll {} outside -1..100", options_.poll);
  try {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    model_ = llama_model_load_from_file(gguf_path.c_str(), mp);
    if (!model_) fail("{}: llama.cpp cannot load it ({})", gguf_path, last_log());
    vocab_size_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
    const int trained = llama_model_n_ctx_train(model_);
    if (options_.capacity == 0) options_.capacity = trained;
    if (options_.capacity < 1 || options_.capacity > trained)
      fail("llama.cpp engine: capacity {} outside 1..{} (the model's context_length)", options_.capacity,
           trained);
    const int total = options_.n_seq * options_.capacity;
    if (options_.n_batch == 0) options_.n_batch = total;
    if (options_.n_ubatch == 0) options_.n_ubatch = options_.n_batch;
    ctx_ = make_context(options_.n_seq, total, options_.n_batch, options_.n_ubatch);
    recompute_ = make_context(1, options_.capacity, std::max(options_.n_batch, options_.capacity),
                              std::min(options_.n_ubatch, options_.capacity));
    batch_ =
        std::make_unique<llama_batch>(llama_batch_init(std::max(options_.n_batch, options_.capacity), 0, 1));
    cursors_.assign(static_cast<size_t>(options_.n_seq), 0);
    attach_threadpool();
  } catch (...) {
    release();
    throw;
  }
}

LlamaCpp::~LlamaCpp() { release(); }

void LlamaCpp::release() {
  if (batch_) {
    llama_batch_free(*batch_);
    batch_.reset();
  }
  if (recompute_) llama_free(recompute_);
  if (ctx_) llama_free(ctx_);
  recompute_ = ctx_ = nullptr;
  free_threadpool();
  if (model_) llama_model_free(model_);
  model_ = nullptr;
}

// The CPU backend is a plugin (libggml-cpu-<isa>.so), so its threadpool functions are reached
// through the backend registry, not linked.
namespace {
template <typename F>
F cpu_proc(const char* name) {
  ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
  void* f = reg ? ggml_backend_reg_get_proc_address(reg, name) : nullptr;
  if (!f) fail("llama.cpp engine: the CPU backend has no {}", name);
  return reinterpret_cast<F>(f);
}

ggml_type ggml_type_of(KvType type) {
  switch (type) {
    case KvType::F16: return GGML_TYPE_F16;
    case KvType::F32: return GGML_TYPE_F32;
    case KvType::Q8_0: return GGML_TYPE_Q8_0;
    case KvType::Q4_0: return GGML_TYPE_Q4_0;
  }
  return GGML_TYPE_F16;
}
}  // namespace

void LlamaCpp::attach_threadpool() {
  if (options_.poll < 0) return;
  if (threadpool_) {
    llama_detach_threadpool(ctx_);
    llama_detach_threadpool(recompute_);
    free_threadpool();
  }
  ggml_threadpool_params params = ggml_threadpool_params_default(options_.threads);
  params.poll = static_cast<uint32_t>(options_.poll);
  using New = ggml_threadpool_t (*)(ggml_threadpool_params*);
  threadpool_ = cpu_proc<New>("ggml_threadpool_new")(&params);
  if (!threadpool_) fail("llama.cpp engine: ggml_threadpool_new failed for {} threads", options_.threads);
  llama_attach_threadpool(ctx_, threadpool_, threadpool_);
  llama_attach_threadpool(recompute_, threadpool_, threadpool_);
}

void LlamaCpp::free_threadpool() {
  if (!threadpool_) return;
  using Free = void (*)(ggml_threadpool_t);
  cpu_proc<Free>("ggml_threadpool_free")(threadpool_);
  threadpool_ = nullptr;
}

llama_context* LlamaCpp::make_context(int n_seq, int n_ctx, int n_batch, int n_ubatch) {
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(n_ctx);
  cp.n_batch = static_cast<uint32_t>(n_batch);
  cp.n_ubatch = static_cast<uint32_t>(n_ubatch);
  cp.n_seq_max = static_cast<uint32_t>(n_seq);
  cp.n_threads = cp.n_threads_batch = options_.threads;
  cp.flash_attn_type = options_.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = cp.type_v = ggml_type_of(options_.kv_type);
  cp.kv_unified = true;
  cp.no_perf = true;
  if (options_.eval_callback) {
    cp.cb_eval = &LlamaCpp::eval_callback;
    cp.cb_eval_user_data = this;
  }
  llama_context* ctx = llama_init_from_model(model_, cp);
  if (!ctx) fail("{}: llama.cpp cannot make a context ({})", path_, last_log());
  return ctx;
}

int LlamaCpp::cursor(int seq) const {
  check_seq(seq, "cursor");
  return cursors_[static_cast<size_t>(seq)];
}

void LlamaCpp::set_trace(LlamaTrace* trace) {
  if (trace && !options_.eval_callback)
    fail("llama.cpp engine: tracing needs the eval callback (options.eval_callback)");
  trace_ = trace;
}

void LlamaCpp::set_threads(int threads) {
  if (threads < 1) fail("llama.cpp engine: threads must be at least 1, got {}", threads);
  options_.threads = threads;
  llama_set_n_threads(ctx_, threads, threads);
  llama_set_n_threads(recompute_, threads, threads);
  attach_threadpool();
}

void LlamaCpp::check_seq(int seq, const char* what) const {
  if (seq < 0 || seq >= options_.n_seq)
    fail("llama.cpp engine {}: sequence {} outside 0..{}", what, seq, options_.n_seq - 1);
}

void LlamaCpp::check_tokens(std::span<const int> tokens) const {
  if (tokens.empty()) fail("llama.cpp engine: empty chunk");
  for (int t : tokens)
    if (t < 0 || t >= vocab_size_) fail("llama.cpp engine: token id {} outside 0..{}", t, vocab_size_ - 1);
}

void LlamaCpp::run(llama_context* ctx, std::span<const Chunk> chunks, std::span<const int> pos0,
                   float* logits, bool all_rows) {
  llama_batch& b = *batch_;
  b.n_tokens = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    for (size_t i = 0; i < ch.tokens.size(); ++i) {
      const int r = b.n_tokens++;
      b.token[r] = ch.tokens[i];
      b.pos[r] = pos0[c] + static_cast<int>(i);
      b.n_seq_id[r] = 1;
      b.seq_id[r][0] = ch.seq;
      b.logits[r] = all_rows || i + 1 == ch.tokens.size();
    }
  }
  if (const int rc = llama_decode(ctx, b); rc != 0)
    fail("{}: llama_decode failed with status {} ({})", path_, rc, last_log());
  const size_t V = static_cast<size_t>(vocab_size_);
  size_t out = 0;
  for (int r = 0; r < b.n_tokens; ++r) {
    if (!b.logits[r]) continue;
    const float* row = llama_get_logits_ith(ctx, r);
    if (!row) fail("{}: llama.cpp returned no logits for batch row {}", path_, r);
    std::copy(row, row + V, logits + out++ * V);
  }
}

std::vector<float> LlamaCpp::forward_uncached(std::span<const int> tokens, bool all_rows) {
  check_tokens(tokens);
  if (static_cast<int>(tokens.size()) > options_.capacity)
    fail("llama.cpp engine: {} tokens exceed the capacity {}", tokens.size(), options_.capacity);
  llama_memory_clear(llama_get_memory(recompute_), true);
  std::vector<float> logits((all_rows ? tokens.size() : 1) * static_cast<size_t>(vocab_size_));
  const Chunk chunk{0, tokens};
  const int pos0 = 0;
  run(recompute_, {&chunk, 1}, {&pos0, 1}, logits.data(), all_rows);
  llama_memory_clear(llama_get_memory(recompute_), true);
  return logits;
}

std::vector<float> LlamaCpp::forward_cached(int seq, std::span<const int> tokens, bool all_rows) {
  std::vector<float> logits((all_rows ? tokens.size() : 1) * static_cast<size_t>(vocab_size_));
  const Chunk chunk{seq, tokens};
  forward_batch({&chunk, 1}, logits, all_rows);
  return logits;
}

void LlamaCpp::forward_batch(std::span<const Chunk> chunks, std::span<float> logits, bool all_rows) {
  if (chunks.empty()) fail("llama.cpp engine: a batch of no chunks");
  std::vector<int> pos0;
  size_t rows = 0, total = 0;
  for (const Chunk& c : chunks) {
    check_seq(c.seq, "append");
    check_tokens(c.tokens);
    for (const Chunk& d : chunks)
      if (&d != &c && d.seq == c.seq) fail("llama.cpp engine: sequence {} appears twice in one batch", c.seq);
    const int cur = cursors_[static_cast<size_t>(c.seq)];
    if (cur + static_cast<int>(c.tokens.size()) > options_.capacity)
      fail("llama.cpp engine: sequence {} would hold {} positions, capacity {}", c.seq, cur + c.tokens.size(),
           options_.capacity);
    pos0.push_back(cur);
    rows += all_rows ? c.tokens.size() : 1;
    total += c.tokens.size();
  }
  if (static_cast<int>(total) > options_.n_batch)
    fail("llama.cpp engine: {} tokens in one batch exceed n_batch {}", total, options_.n_batch);
  if (logits.size() != rows * static_cast<size_t>(vocab_size_))
    fail("llama.cpp engine: logits span holds {} floats, {} rows need {}", logits.size(), rows,
         rows * static_cast<size_t>(vocab_size_));
  run(ctx_, chunks, pos0, logits.data(), all_rows);
  for (const Chunk& c : chunks) cursors_[static_cast<size_t>(c.seq)] += static_cast<int>(c.tokens.size());
}

void LlamaCpp::decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) {
  if (seqs.size() != tokens.size())
    fail("llama.cpp engine decode: {} sequences, {} tokens", seqs.size(), tokens.size());
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < seqs.size(); ++i) chunks.push_back({seqs[i], tokens.subspan(i, 1)});
  forward_batch(chunks, logits, false);
}

void LlamaCpp::reset() {
  llama_memory_clear(llama_get_memory(ctx_), true);
  std::fill(cursors_.begin(), cursors_.end(), 0);
}

void LlamaCpp::reset(int seq) { truncate(seq, 0); }

void LlamaCpp::truncate(int seq, int p) {
  check_seq(seq, "truncate");
  int& cur = cursors_[static_cast<size_t>(seq)];
  if (p < 0 || p > cur)
    fail("llama.cpp engine truncate: position {} outside 0..{} of sequence {}", p, cur, seq);
  if (!llama_memory_seq_rm(llama_get_memory(ctx_), seq, p, -1))
    fail("llama.cpp engine truncate: llama_memory_seq_rm refused sequence {} at {}", seq, p);
  cur = p;
}

void LlamaCpp::remove(int seq, int p0, int p1) {
  check_seq(seq, "remove");
  const int cur = cursors_[static_cast<size_t>(seq)];
  if (p0 < 0 || p0 > p1 || p1 > cur)
    fail("llama.cpp engine remove: positions {}..{} outside 0..{} of sequence {}", p0, p1, cur, seq);
  if (!llama_memory_seq_rm(llama_get_memory(ctx_), seq, p0, p1))
    fail("llama.cpp engine remove: llama_memory_seq_rm refused sequence {} at {}..{}", seq, p0, p1);
}

void LlamaCpp::fork(int src, int dst, int prefix_len) {
  check_seq(src, "fork");
  check_seq(dst, "fork");
  const int have = cursors_[static_cast<size_t>(src)];
  if (prefix_len < 0 || prefix_len > have)
    fail("llama.cpp engine fork: prefix {} outside 0..{} of sequence {}", prefix_len, have, src);
  // As ours (KvCache::fork): a fork onto itself is a caller's mistake, refused, not a truncate.
  if (src == dst) fail("llama.cpp engine fork: source and destination are both sequence {}", src);
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_memory_seq_rm(mem, dst, -1, -1);
  llama_memory_seq_cp(mem, src, dst, 0, prefix_len);
  cursors_[static_cast<size_t>(dst)] = prefix_len;
}

}  // namespace miniinfer
