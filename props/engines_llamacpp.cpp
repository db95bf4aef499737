// llama.cpp behind EngineUnderTest: LlamaCpp (src/llamacpp/) running the model exported to GGUF.
// It has no K/V rows we can read, no fault catalogue and no random architectures; it traces a
// call through its eval callback, whose tensors this file turns into our trace records. The
// declaration (flags, settings) is always built; the engine itself only when the build has
// llama.cpp, and then it calls LlamaCpp through the module loaded at run time
// (llamacpp/module.h): props links none of llama.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "base/error.h"
#include "base/sha256.h"
#include "engine/generate_loops.h"
#include "llamacpp/llamacpp_engine.h"
#include "llamacpp/module.h"
#include "llamacpp/tolerance.h"
#include "props/engine_registry.h"

namespace miniinfer::props {
namespace {

// A history laid in the unified cache after every whole reset, before a case writes to it, so
// its cells are not the cells 0, 1, 2, ... a fresh cache gives (llama.cpp places a batch's rows
// in the lowest free cells, in order; the pinned release has no defragmentation). The ballast is
// one extra sequence, never read by a case (masked out of every attention row):
//   holes:N    the ballast takes cells 0..2N-1 and frees every other one: the case's first N
//              rows land in cells 0, 2, ..., 2N-2, a ballast cell between each two;
//   reorder:N  the ballast takes cells 0..N-1 and is freed after the case's first cached call:
//              the rows of the later calls land in cells 0..N-1, before the cells of earlier
//              positions (out of order), as when another request finishes mid-run.
struct Fragment {
  std::string mode = "off";  // off | holes | reorder
  int cells = 0;             // N
  std::string text() const { return mode == "off" ? mode : fmt::format("{}:{}", mode, cells); }
  bool on() const { return mode != "off"; }
  int ballast_cells() const { return mode == "holes" ? 2 * cells : mode == "reorder" ? cells : 0; }
  // "off", "holes:N" or "reorder:N" with N in 1..4096; else an Error naming `what`.
  static Fragment parse(const std::string& text, const std::string& what) {
    Fragment f;
    if (text == "off") return f;
    const size_t colon = text.find(':');
    const std::string mode = text.substr(0, colon), n = colon == std::string::npos ? "" : text.substr(colon + 1);
    if ((mode != "holes" && mode != "reorder") || n.empty() || n.size() > 4 ||
        n.find_first_not_of("0123456789") != std::string::npos || std::stoi(n) < 1 || std::stoi(n) > 4096)
      fail("{}: '{}' is not off, holes:N or reorder:N (N in 1..4096)", what, text);
    f.mode = mode;
    f.cells = std::stoi(n);
    return f;
  }
};

// The --llama-kv names, as llama.cpp's -ctk/-ctv name them; nullopt for any other.
std::optional<KvType> kv_type_of(const std::string& kv) {
  static const std::map<std::string, KvType> types = {
      {"f16", KvType::F16}, {"f32", KvType::F32}, {"q8_0", KvType::Q8_0}, {"q4_0", KvType::Q4_0}};
  const auto it = types.find(kv);
  if (it == types.end()) return std::nullopt;
  return it->second;
}
// ggml's block formats: 32 floats of a row share one F16 scale (block_q8_0, block_q4_0).
bool quantized(const std::string& kv) { return kv == "q8_0" || kv == "q4_0"; }
constexpr int kGgmlBlock = 32;

struct LlamaSettings {
  std::string gguf;         // relative to the source tree when it lies inside it, else absolute
  std::string gguf_sha256;  // of that file, so a replay runs on the same one
  std::string kv = "f16";  // f16 | f32 | q8_0 | q4_0 (the quantized two need flash attention)
  int threads = 1;
  bool flash = false;
  int ubatch = 0;          // 0 = llama.cpp's n_ubatch = n_batch
  bool prefix_reuse = true;  // submit() reuses the longest common prefix (Capability PrefixCache)
  Fragment fragment;
  // prefix_reuse and fragment only when they are not their defaults (on, off), which a case file
  // without them means: the case files and reports saved before they existed replay byte for
  // byte (props_saved_cases).
  nlohmann::json to_json() const {
    nlohmann::json j = {{"gguf", gguf}, {"gguf_sha256", gguf_sha256}, {"kv", kv}, {"threads", threads},
                        {"flash", flash ? "on" : "off"}, {"ubatch", ubatch}};
    if (!prefix_reuse) j["prefix_reuse"] = "off";
    if (fragment.on()) j["fragment"] = fragment.text();
    return j;
  }
  static LlamaSettings from_json(const nlohmann::json& j);  // throws Error naming the field
};

// A case file without prefix_reuse or fragment means on and off: those written before they
// existed ran with no ballast and never called submit().
LlamaSettings LlamaSettings::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("engine settings: must be an object");
  try {
    LlamaSettings s;
    s.gguf = j.at("gguf").get<std::string>();
    s.gguf_sha256 = j.value("gguf_sha256", std::string());
    s.kv = j.at("kv").get<std::string>();
    s.threads = j.at("threads").get<int>();
    const std::string flash = j.at("flash").get<std::string>();
    if (flash != "on" && flash != "off") fail("engine settings: flash must be on or off, got '{}'", flash);
    s.flash = flash == "on";
    s.ubatch = j.at("ubatch").get<int>();
    const std::string reuse = j.value("prefix_reuse", std::string("on"));
    if (reuse != "on" && reuse != "off") fail("engine settings: prefix_reuse must be on or off, got '{}'", reuse);
    s.prefix_reuse = reuse == "on";
    s.fragment = Fragment::parse(j.value("fragment", std::string("off")), "engine settings: fragment");
    if (!kv_type_of(s.kv)) fail("engine settings: kv must be f16, f32, q8_0 or q4_0, got '{}'", s.kv);
    if (quantized(s.kv) && !s.flash)
      fail("engine settings: kv {} needs flash on (llama.cpp quantizes a V cache only with flash attention)", s.kv);
    if (s.threads < 1 || s.threads > 256) fail("engine settings: threads {} outside 1..256", s.threads);
    if (s.ubatch < 0 || s.ubatch > 65536) fail("engine settings: ubatch {} outside 0..65536", s.ubatch);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("engine settings: {}", e.what());
  }
}

#ifdef MINIINFER_HAVE_LLAMACPP

// ---- the eval callback's tensors as our trace records ----------------------------------------

// llama.cpp's name for a traced tensor -> our kind; Probs is handled apart.
bool kind_of(const std::string& base, TraceKind& kind) {
  static const std::map<std::string, TraceKind> kinds = {
      {"attn_norm", TraceKind::Ln1}, {"Qcur", TraceKind::Q},        {"Kcur", TraceKind::K},
      {"Vcur", TraceKind::V},        {"kqv_out", TraceKind::AttnOut}, {"ffn_norm", TraceKind::Ln2},
      {"ffn_out", TraceKind::Mlp},   {"l_out", TraceKind::BlockOut},  {"kq_soft_max", TraceKind::Probs}};
  const auto it = kinds.find(base);
  if (it == kinds.end()) return false;
  kind = it->second;
  return true;
}

struct Row {
  int seq, pos;  // the sequence and absolute position of one row of a call, in submission order
};

// One llama_decode call's tensors appended to `out` as records of call out.calls. A call of
// several ubatches traces each layer once per ubatch: the last tensor of a name within a
// ubatch is the final one (Qcur after the bias and RoPE), and ubatches are concatenated in
// order. Probabilities are kept only when `cells_are_positions` (cell i holds position i of
// the row's sequence).
void append_trace(Trace& out, const LlamaTrace& lt, const std::vector<Row>& rows, Pass pass, const Config& c,
                  bool cells_are_positions) {
  const int L = c.n_layer, H = c.n_head, D = c.d_model, dh = D / H;
  std::vector<std::map<std::string, const LayerTensor*>> ubatches(1);
  const std::string last_layer = fmt::format("l_out-{}", L - 1);
  for (const LayerTensor& t : lt.tensors) {
    ubatches.back()[t.name] = &t;
    if (t.name == last_layer) ubatches.emplace_back();
  }
  auto row_at = [&](int64_t r) { return r < static_cast<int64_t>(rows.size()) ? rows[static_cast<size_t>(r)] : Row{-1, -1}; };
  auto keep = [&](int seq, int layer, int head, int pos, TraceKind kind, const float* p, size_t n) {
    out.records.push_back({out.step, out.calls, pass, seq, layer, head, pos, kind, std::vector<float>(p, p + n)});
  };
  int row0 = 0;
  for (const auto& ub : ubatches) {
    int n = 0;
    for (const auto& [name, t] : ub) {
      const size_t dash = name.rfind('-');
      TraceKind kind;
      if (dash == std::string::npos || !kind_of(name.substr(0, dash), kind)) continue;
      const int layer = std::stoi(name.substr(dash + 1));
      if (kind == TraceKind::Probs) {
        // ne: (n_kv, n_rows, H)
        const int64_t n_kv = t->ne[0], n_rows = t->ne[1];
        if (!cells_are_positions || t->ne[2] != H) continue;
        for (int64_t r = 0; r < n_rows; ++r) {
          const Row row = row_at(row0 + r);
          if (row.pos < 0 || row.pos >= n_kv || !out.wants(row.pos)) continue;
          for (int h = 0; h < H; ++h)
            keep(row.seq, layer, h, row.pos, kind, t->data.data() + (static_cast<size_t>(h) * n_rows + r) * n_kv,
                 static_cast<size_t>(row.pos) + 1);
        }
        continue;
      }
      if (t->data.size() % static_cast<size_t>(D) != 0) continue;
      const int rows_here = static_cast<int>(t->data.size() / static_cast<size_t>(D));
      n = std::max(n, rows_here);
      const bool per_head = kind == TraceKind::Q || kind == TraceKind::K || kind == TraceKind::V ||
                            kind == TraceKind::AttnOut;
      for (int r = 0; r < rows_here; ++r) {
        const Row row = row_at(row0 + r);
        if (row.pos < 0 || !out.wants(row.pos)) continue;
        const float* x = t->data.data() + static_cast<size_t>(r) * D;
        if (!per_head) {
          keep(row.seq, layer, -1, row.pos, kind, x, static_cast<size_t>(D));
          continue;
        }
        for (int h = 0; h < H; ++h) keep(row.seq, layer, h, row.pos, kind, x + h * dh, static_cast<size_t>(dh));
      }
    }
    row0 += n;
  }
  ++out.calls;
}

// ---- the engine -------------------------------------------------------------------------------

class LlamaSubject final : public EngineUnderTest {
 public:
  LlamaSubject(const LlamaCppModule& module, const LlamaSettings& s, const Config& config, int batch, int capacity)
      : settings_(s),
        config_(config),
        batch_(batch),
        e_(module.open(open_path(s.gguf), options(s, batch, capacity))),
        tokens_(static_cast<size_t>(batch)),
        retained_(static_cast<size_t>(batch), false) {}

  std::string name() const override { return "llamacpp"; }
  nlohmann::json settings() const override { return settings_.to_json(); }
  std::string kv_dtype() const override { return settings_.kv; }
  // Capability KvQuant: every row is quantized when it is written, no float residual (llama.cpp's
  // full recompute writes its rows through the same ggml_cpy to the cache type).
  KvQuantInfo kv_quant() const override {
    if (!quantized(settings_.kv)) return {};
    return {settings_.kv, kGgmlBlock, 0};
  }
  // verify and rollback are the scaffold's defaults, which here are the library's speculative
  // path: forward_cached(all_rows) is one llama_decode with logits on every row, truncate is
  // llama_memory_seq_rm(seq, keep, -1) (src/llamacpp/llamacpp_engine.cpp).
  std::string describe() const override {
    return fmt::format("llamacpp {} (KV {}, {} thread{}, flash attention {}, ubatch {}, prefix reuse {}, cells {})",
                       settings_.gguf, settings_.kv, settings_.threads, settings_.threads == 1 ? "" : "s",
                       settings_.flash ? "on" : "off",
                       settings_.ubatch ? std::to_string(settings_.ubatch) : std::string("= batch"),
                       settings_.prefix_reuse ? "on" : "off", settings_.fragment.text());
  }
  bool has(Capability c) const override {
    return c == Capability::Trace || c == Capability::Threads || (c == Capability::PrefixCache && settings_.prefix_reuse) ||
           (c == Capability::KvQuant && quantized(settings_.kv));
  }
  // p14's thread counts; the settings (and so a saved case) keep --llama-threads.
  void set_threads(int threads) override {
    if (threads == threads_) return;
    e_->set_threads(threads);
    threads_ = threads;
  }
  int threads() const override { return threads_; }
  const Config& config() const override { return config_; }

  int vocab_size() const override { return e_->vocab_size(); }
  int batch() const override { return batch_; }
  int capacity() const override { return e_->capacity(); }
  int max_seq_len() const override { return e_->capacity(); }
  int cursor(int seq) const override { return live(seq) ? e_->cursor(seq) : 0; }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override {
    for (const Chunk& c : chunks) check_live(c.seq, "append");
    Call call(*this);
    for (const Chunk& c : chunks) call.rows_from(c.seq, e_->cursor(c.seq), static_cast<int>(c.tokens.size()));
    several_sequences();
    e_->forward_batch(chunks, logits, false);
    for (const Chunk& c : chunks) append(c.seq, c.tokens);
    call.done(Pass::Decode, false);
  }
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override {
    for (int s : seqs) check_live(s, "decode");
    Call call(*this);
    for (int s : seqs) call.rows_from(s, e_->cursor(s), 1);
    several_sequences();
    e_->decode(seqs, tokens, logits);
    for (size_t i = 0; i < seqs.size() && i < tokens.size(); ++i) append(seqs[i], tokens.subspan(i, 1));
    call.done(Pass::Decode, false);
  }
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows) override {
    check_live(seq, "append");
    Call call(*this);
    call.rows_from(seq, e_->cursor(seq), static_cast<int>(tokens.size()));
    const bool alone = only_seq_ == kNone || only_seq_ == seq;
    only_seq_ = alone ? seq : kSeveral;
    auto logits = e_->forward_cached(seq, tokens, all_rows);
    append(seq, tokens);
    call.done(Pass::Decode, alone);
    return logits;
  }
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows) override {
    Call call(*this);
    if (trace_) call.rows_from(trace_->seq, 0, static_cast<int>(tokens.size()));
    auto logits = e_->forward_uncached(tokens, all_rows);
    call.done(Pass::Uncached, true);  // a fresh memory: cell i holds position i
    return logits;
  }
  bool trace_call(Trace* trace, int nth) override {
    trace_ = trace;
    countdown_ = nth;
    return true;
  }
  void truncate(int seq, int p) override {
    check_live(seq, "truncate");
    e_->truncate(seq, p);
    tokens_[static_cast<size_t>(seq)].resize(static_cast<size_t>(e_->cursor(seq)));
  }
  void fork(int src, int dst, int prefix_len) override {
    check_live(src, "fork");
    e_->fork(src, dst, prefix_len);  // llama_memory_seq_rm of dst first: a freed dst's cells go
    if (src != dst) revive(dst);
    copy_tokens(src, dst, prefix_len);
    several_sequences();
  }
  void reset() override {
    e_->reset();
    for (auto& t : tokens_) t.clear();
    std::fill(retained_.begin(), retained_.end(), false);
    only_seq_ = kNone;
    lay_ballast();
  }
  void reset(int seq) override {
    e_->reset(seq);
    revive(seq);
    tokens_[static_cast<size_t>(seq)].clear();
  }
  // llama_memory_clear(data = true) zeroes the KV buffers: nothing of an earlier case is left.
  void clean_slate() override {
    reset();
    trace_ = nullptr;  // a trace_call whose call never came (an Error on the way) is void
  }

  // llama-server's prompt cache (tools/server/server-context.cpp, cache_prompt): the new prompt
  // keeps the longest common prefix (LCP) some sequence's cells hold, at most prompt.size() - 1
  // tokens (the last one is computed for its logits, as llama-server's "need to evaluate at
  // least 1 token"), and the rest runs as one cached chunk. The prefix comes from seq's own
  // earlier contents (llama-server's slot: llama_memory_seq_rm of the tail) or, when another
  // sequence, live or freed, shares a longer one, from that sequence by llama_memory_seq_cp
  // (the cells are shared, not recomputed). Ties go to seq itself, then to the lowest sequence.
  Submitted submit(int seq, std::span<const int> prompt) override {
    if (!settings_.prefix_reuse) return EngineUnderTest::submit(seq, prompt);
    // Refused before anything changes: a bad sequence, an empty or too long prompt, a bad id.
    if (seq < 0 || seq >= batch_) fail("llama.cpp engine submit: sequence {} outside 0..{}", seq, batch_ - 1);
    if (prompt.empty()) fail("llama.cpp engine: empty chunk");
    if (static_cast<int>(prompt.size()) > e_->capacity())
      fail("llama.cpp engine submit: a prompt of {} tokens, capacity {}", prompt.size(), e_->capacity());
    for (int t : prompt)
      if (t < 0 || t >= e_->vocab_size())
        fail("llama.cpp engine: token id {} outside 0..{}", t, e_->vocab_size() - 1);
    const int most = static_cast<int>(prompt.size()) - 1;
    int best = seq, reused = std::min(common_prefix(seq, prompt), most);
    for (int s = 0; s < batch_; ++s) {
      const int n = std::min(common_prefix(s, prompt), most);
      if (n > reused) best = s, reused = n;
    }
    retained_[static_cast<size_t>(seq)] = false;  // its cells are the request's to keep or drop
    if (best == seq) {
      e_->truncate(seq, reused);
      tokens_[static_cast<size_t>(seq)].resize(static_cast<size_t>(reused));
    } else {
      e_->fork(best, seq, reused);  // llama_memory_seq_rm of seq, then seq_cp of the prefix
      copy_tokens(best, seq, reused);
      several_sequences();
    }
    return {forward_cached(seq, prompt.subspan(static_cast<size_t>(reused)), false), reused};
  }
  int prefix_block() const override { return settings_.prefix_reuse ? 1 : 0; }  // cells are per token
  // With prefix reuse, as a llama-server slot whose request is done: the cells stay (a later
  // submit may reuse them, from this sequence or another) but the sequence reads as empty, and,
  // as our engine's free() (engine/engine.h), every call on it but submit, reset and fork into
  // it is refused until one of those revives it.
  void free(int seq) override {
    if (!settings_.prefix_reuse) return reset(seq);
    if (seq < 0 || seq >= batch_) fail("llama.cpp engine free: sequence {} outside 0..{}", seq, batch_ - 1);
    check_live(seq, "free");
    retained_[static_cast<size_t>(seq)] = true;
  }

  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) override {
    detail::check_request(prompts, o, batch(), capacity());
    if (o.trace) fail("llama.cpp: generate traces no whole run (trace_call traces one of its calls)");
    reset();
    EngineUnderTest& self = *this;  // the loops call the base's forward_uncached(tokens, logits)
    return detail::run_loops(self, prompts, o);
  }

 private:
  static LlamaCppOptions options(const LlamaSettings& s, int batch, int capacity) {
    LlamaCppOptions o;
    o.threads = s.threads;
    o.kv_type = *kv_type_of(s.kv);
    o.flash_attn = s.flash;
    o.n_seq = batch + (s.fragment.on() ? 1 : 0);  // the ballast's sequence last
    o.capacity = capacity;
    o.n_ubatch = s.ubatch;
    return o;
  }
  bool live(int seq) const {
    return seq < 0 || seq >= batch_ || !retained_[static_cast<size_t>(seq)];
  }
  // A call on a freed sequence is refused, before anything changes.
  void check_live(int seq, const char* what) const {
    if (!live(seq))
      fail("llama.cpp engine {}: sequence {} is freed (a submit, reset or fork into it revives it)", what, seq);
  }
  // After the engine dropped seq's cells (reset, fork into it): live and empty.
  void revive(int seq) {
    if (seq < 0 || seq >= batch_) return;
    retained_[static_cast<size_t>(seq)] = false;
    tokens_[static_cast<size_t>(seq)].clear();
  }
  void append(int seq, std::span<const int> tokens) {
    auto& t = tokens_[static_cast<size_t>(seq)];
    t.insert(t.end(), tokens.begin(), tokens.end());
    release_ballast();
  }
  void copy_tokens(int src, int dst, int n) {
    if (src == dst) return tokens_[static_cast<size_t>(dst)].resize(static_cast<size_t>(n));
    const auto& from = tokens_[static_cast<size_t>(src)];
    tokens_[static_cast<size_t>(dst)].assign(from.begin(), from.begin() + n);
  }
  int common_prefix(int s, std::span<const int> prompt) const {
    const auto& t = tokens_[static_cast<size_t>(s)];
    size_t n = 0;
    while (n < t.size() && n < prompt.size() && t[n] == prompt[n]) ++n;
    return static_cast<int>(n);
  }
  // The ballast (Fragment), after every whole reset: token ids 0, 1, 2, ... in one call.
  void lay_ballast() {
    const Fragment& f = settings_.fragment;
    if (!f.on()) return;
    const int ballast = batch_;
    std::vector<int> ids(static_cast<size_t>(f.ballast_cells()));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int>(i % static_cast<size_t>(e_->vocab_size()));
    e_->forward_cached(ballast, ids, false);
    if (f.mode == "holes")
      for (int p = 0; p < 2 * f.cells; p += 2) e_->remove(ballast, p, p + 1);
    ballast_pending_ = f.mode == "reorder";
    several_sequences();  // cell i no longer holds position i
  }
  void release_ballast() {
    if (!ballast_pending_) return;
    ballast_pending_ = false;
    e_->reset(batch_);
  }
  // Whether the cache's cells are positions of one sequence (attention probabilities are then
  // comparable with full recompute's): only one sequence written through forward_cached since
  // the cache was last cleared. A batch call or a fork counts as several.
  static constexpr int kNone = -1, kSeveral = -2;
  void several_sequences() { only_seq_ = kSeveral; }

  // Every forward call counts down to the traced one, which runs with the eval callback's
  // trace attached (and only that one); done() turns its tensors into records.
  struct Call {
    explicit Call(LlamaSubject& s) : s_(s) {
      if (s_.trace_ && s_.countdown_-- == 0) {
        s_.tensors_.clear();
        s_.e_->set_trace(&s_.tensors_);
        armed_ = true;
      }
    }
    ~Call() {
      if (!armed_) return;
      s_.e_->set_trace(nullptr);
      s_.trace_ = nullptr;
    }
    void rows_from(int seq, int pos0, int n) {
      if (!armed_) return;
      for (int i = 0; i < n; ++i) rows_.push_back({seq, pos0 + i});
    }
    void done(Pass pass, bool cells_are_positions) {
      if (armed_) append_trace(*s_.trace_, s_.tensors_, rows_, pass, s_.config_, cells_are_positions);
    }
    LlamaSubject& s_;
    bool armed_ = false;
    std::vector<Row> rows_;
  };
  LlamaSettings settings_;
  Config config_;
  int batch_;
  std::unique_ptr<LlamaCppCalls> e_;
  int threads_ = settings_.threads;  // the calls' threads now
  std::vector<std::vector<int>> tokens_;  // (batch) the tokens each sequence's cells hold
  std::vector<bool> retained_;            // (batch) freed, its cells kept for a later submit
  bool ballast_pending_ = false;          // reorder: the ballast goes after the next cached call
  Trace* trace_ = nullptr;
  int countdown_ = 0;
  LlamaTrace tensors_;  // the traced call's
  int only_seq_ = kNone;
};

// Loads the GGUF and checks that it is `model`'s: its logits for a short token list must lie
// within the derived bound of ours (src/llamacpp/tolerance.h), or an Error says they do not.
std::unique_ptr<EngineUnderTest> make(const nlohmann::json& j, const Model& model, int batch, int capacity) {
  const LlamaSettings settings = LlamaSettings::from_json(j);
  const LlamaCppModule* module = nullptr;
  try {
    module = &llamacpp_module();
  } catch (const Error& e) {
    fail("--engine llamacpp: {}", e.what());
  }
  std::unique_ptr<EngineUnderTest> subject;
  try {
    subject = std::make_unique<LlamaSubject>(*module, settings, model.config, batch, capacity);
  } catch (const Error& e) {
    std::string why = e.what();
    const std::string path = open_path(settings.gguf) + ": ";
    if (why.starts_with(path)) why = why.substr(path.size());
    fail("--gguf {}: {}", settings.gguf, why);
  }
  if (settings.fragment.ballast_cells() > subject->capacity())
    fail("--llama-fragment {}: the ballast needs {} cells, more than the {} a sequence holds", settings.fragment.text(),
         settings.fragment.ballast_cells(), subject->capacity());
  if (subject->vocab_size() != model.config.vocab_size)
    fail("--gguf {}: its vocabulary has {} tokens, the model's {}; export it from the same model (minigpt export-gguf)",
         settings.gguf, subject->vocab_size(), model.config.vocab_size);
  // The same model? Its logits for a few tokens, against ours, within the derived bound.
  std::vector<int> tokens;
  for (int t = 0; t < 8 && t < model.config.vocab_size; ++t) tokens.push_back(t);
  Engine ours(model);
  const std::vector<float> a = ours.forward_uncached(tokens), b = subject->forward_uncached(tokens);
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  const double tol = logit_tolerance(model, *kv_type_of(settings.kv)).tol;
  if (!(worst <= tol))
    fail("--gguf {}: its logits differ from the model's by up to {:.3g}, more than the bound {:.3g}: it is not this "
         "model (export it with minigpt export-gguf --model MODEL)", settings.gguf, worst, tol);
  subject->reset();
  return subject;
}

#else

std::unique_ptr<EngineUnderTest> make(const nlohmann::json&, const Model&, int, int) {
  fail("--engine llamacpp: this build has no llama.cpp (run scripts/fetch-llamacpp, then cmake again)");
}

#endif

// ---- the declaration ---------------------------------------------------------------------------

// A number flag's value (the flag table let only digits through; leading zeros are fine) if
// it lies in lo..hi; the refusal shows the number as given, whole.
int number_in(const RunConfig& run, const std::string& flag, int lo, int hi) {
  const std::string text = flag_value(run, flag);
  const size_t first = text.find_first_not_of('0');
  const std::string digits = first == std::string::npos ? "0" : text.substr(first);
  const long long n = digits.size() > 12 ? hi + 1LL : std::stoll(digits);
  if (n < lo || n > hi) fail("{}: {} is outside {}..{}", flag, text, lo, hi);
  return static_cast<int>(n);
}

nlohmann::json settings(const RunConfig& run) {
  const std::string gguf = flag_value(run, "--gguf"), kv = flag_value(run, "--llama-kv");
  const std::string flash = flag_value(run, "--llama-flash");
  const int threads = number_in(run, "--llama-threads", 1, 256);
  const int ubatch = number_in(run, "--llama-ubatch", 0, 65536);
  if (!kv_type_of(kv)) fail("--llama-kv: '{}' is not f16, f32, q8_0 or q4_0", kv);
  if (flash != "on" && flash != "off") fail("--llama-flash: '{}' is not on or off", flash);
  if (quantized(kv) && flash != "on")
    fail("--llama-kv {}: llama.cpp quantizes a V cache only with flash attention: add --llama-flash on", kv);
  const std::string reuse = flag_value(run, "--llama-prefix-reuse");
  if (reuse != "on" && reuse != "off") fail("--llama-prefix-reuse: '{}' is not on or off", reuse);
  const Fragment fragment = Fragment::parse(flag_value(run, "--llama-fragment"), "--llama-fragment");
  if (!std::filesystem::is_regular_file(gguf)) fail("--gguf {}: no such file", gguf);
  LlamaSettings s = LlamaSettings::from_json({{"gguf", source_relative_path(gguf)},
                                              {"kv", kv},
                                              {"threads", threads},
                                              {"flash", flash},
                                              {"ubatch", ubatch},
                                              {"prefix_reuse", reuse},
                                              {"fragment", fragment.text()}});
  s.gguf_sha256 = file_sha256(gguf);
  return s.to_json();
}

nlohmann::json read_saved(const nlohmann::json& saved) { return LlamaSettings::from_json(saved).to_json(); }

// The saved settings, with the GGUF this run's --gguf names (if any): the same file by sha256.
nlohmann::json replay(const std::string& path, const nlohmann::json& saved, const RunConfig& run) {
  LlamaSettings s = LlamaSettings::from_json(saved);
  if (!flag_value(run, "--gguf").empty()) s.gguf = run.engine_settings.at("gguf").get<std::string>();
  if (!std::filesystem::is_regular_file(open_path(s.gguf)))
    fail("replay {}: its engine's GGUF {} is not there; pass --gguf FILE", path, s.gguf);
  if (!s.gguf_sha256.empty() && file_sha256(open_path(s.gguf)) != s.gguf_sha256)
    fail("replay {}: saved against a GGUF with sha256 {}, but {} is another file", path, s.gguf_sha256, s.gguf);
  return s.to_json();
}

}  // namespace

const EngineDecl kLlamaCpp = {
    .name = "llamacpp",
    .note = "",
    .flags = {{.name = "--gguf",
               .arg = " FILE",
               .help = "the model as GGUF (minigpt export-gguf --out FILE); --model\n"
                       "must name the same model (it gives the tokenizer and the case files' sha256)",
               .fallback = "",
               .elsewhere = "only --engine llamacpp reads a GGUF",
               .required = "minigpt export-gguf writes one"},
              {.name = "--llama-kv",
               .arg = " f16|f32|q8_0|q4_0",
               .help = "the KV cache's type (default f16, llama.cpp's default); q8_0 and q4_0\n"
                       "(blocks of 32, Capability KvQuant) need --llama-flash on",
               .fallback = "f16"},
              {.name = "--llama-threads", .arg = " N", .help = "threads (default 1)", .fallback = "1", .number = true},
              {.name = "--llama-flash", .arg = " on|off", .help = "flash attention (default off)", .fallback = "off"},
              {.name = "--llama-ubatch",
               .arg = " N",
               .help = "rows of one physical batch (default 0: the whole batch)",
               .fallback = "0",
               .number = true},
              {.name = "--llama-prefix-reuse",
               .arg = " on|off",
               .help = "submit() reuses the longest prefix some sequence's cells hold, by\n"
                       "llama_memory_seq_cp, as llama-server's cache_prompt (default on: Capability PrefixCache)",
               .fallback = "on"},
              {.name = "--llama-fragment",
               .arg = " off|holes:N|reorder:N",
               .help = "a ballast sequence fragments the cache after every reset: holes:N leaves\n"
                       "N one-cell holes, reorder:N N cells freed after the case's first call (default off)",
               .fallback = "off"}},
    .flag_prefix = "--llama-",
    .settings = settings,
    .read_saved = read_saved,
    .replay = replay,
    .make = make,
};

}  // namespace miniinfer::props
