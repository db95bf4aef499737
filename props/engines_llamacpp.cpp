// llama.cpp behind EngineUnderTest: LlamaCpp (src/llamacpp/) running the model exported to GGUF.
// It has no K/V rows we can read, no fault catalogue and no random architectures; the reporter
// traces it through its eval callback (llama()).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "base/error.h"
#include "engine/generate_loops.h"
#include "llamacpp/llamacpp_engine.h"
#include "llamacpp/tolerance.h"
#include "props/engines.h"

namespace miniinfer::props {
namespace {

class LlamaSubject final : public EngineUnderTest {
 public:
  LlamaSubject(const LlamaSettings& s, int batch, int capacity) : settings_(s), e_(gguf_open_path(s.gguf), options(s, batch, capacity)) {}

  std::string name() const override { return "llamacpp"; }
  nlohmann::json settings() const override { return settings_.to_json(); }
  std::string describe() const override {
    return fmt::format("llamacpp {} (KV {}, {} thread{}, flash attention {}, ubatch {})", settings_.gguf, settings_.kv,
                       settings_.threads, settings_.threads == 1 ? "" : "s", settings_.flash ? "on" : "off",
                       settings_.ubatch ? std::to_string(settings_.ubatch) : std::string("= batch"));
  }
  bool has(Capability) const override { return false; }

  int vocab_size() const override { return e_.vocab_size(); }
  int batch() const override { return e_.n_seq(); }
  int capacity() const override { return e_.capacity(); }
  int max_seq_len() const override { return e_.capacity(); }
  int cursor(int seq) const override { return e_.cursor(seq); }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override {
    Call call(*this);
    e_.forward_batch(chunks, logits, false);
  }
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override {
    Call call(*this);
    e_.decode(seqs, tokens, logits);
  }
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows) override {
    Call call(*this);
    return e_.forward_cached(seq, tokens, all_rows);
  }
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows) override {
    Call call(*this);
    return e_.forward_uncached(tokens, all_rows);
  }
  bool trace_call(LlamaTrace* trace, int nth) override {
    trace_ = trace;
    countdown_ = nth;
    return true;
  }
  void truncate(int seq, int p) override { e_.truncate(seq, p); }
  void fork(int src, int dst, int prefix_len) override { e_.fork(src, dst, prefix_len); }
  void reset() override { e_.reset(); }
  void reset(int seq) override { e_.reset(seq); }
  // llama_memory_clear(data = true) zeroes the KV buffers: nothing of an earlier case is left.
  void clean_slate() override { e_.reset(); }

  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& o) override {
    detail::check_request(prompts, o, batch(), capacity());
    if (o.trace) fail("llama.cpp: generate takes no Trace of ours (its tracing is llama())");
    e_.reset();
    EngineUnderTest& self = *this;  // the loops call the base's forward_uncached(tokens, logits)
    return detail::run_loops(self, prompts, o);
  }

 private:
  static LlamaCppOptions options(const LlamaSettings& s, int batch, int capacity) {
    LlamaCppOptions o;
    o.threads = s.threads;
    o.kv_type = s.kv == "f32" ? KvType::F32 : KvType::F16;
    o.flash_attn = s.flash;
    o.n_seq = batch;
    o.capacity = capacity;
    o.n_ubatch = s.ubatch;
    return o;
  }
  // Every forward call counts down to the traced one, which runs with the eval callback's
  // trace attached (and only that one).
  struct Call {
    explicit Call(LlamaSubject& s) : s_(s) {
      if (s_.trace_ && s_.countdown_-- == 0) {
        s_.e_.set_trace(s_.trace_);
        armed_ = true;
      }
    }
    ~Call() {
      if (!armed_) return;
      s_.e_.set_trace(nullptr);
      s_.trace_ = nullptr;
    }
    LlamaSubject& s_;
    bool armed_ = false;
  };
  LlamaSettings settings_;
  LlamaCpp e_;
  LlamaTrace* trace_ = nullptr;
  int countdown_ = 0;
};

}  // namespace

bool have_llamacpp() { return true; }

std::unique_ptr<EngineUnderTest> make_llamacpp(const LlamaSettings& settings, const Model& model, int batch,
                                               int capacity) {
  std::unique_ptr<EngineUnderTest> subject;
  try {
    subject = std::make_unique<LlamaSubject>(settings, batch, capacity);
  } catch (const Error& e) {
    std::string why = e.what();
    const std::string path = gguf_open_path(settings.gguf) + ": ";
    if (why.starts_with(path)) why = why.substr(path.size());
    fail("--gguf {}: {}", settings.gguf, why);
  }
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
  const double tol = logit_tolerance(model, settings.kv == "f32" ? KvType::F32 : KvType::F16).tol;
  if (!(worst <= tol))
    fail("--gguf {}: its logits differ from the model's by up to {:.3g}, more than the bound {:.3g}: it is not this "
         "model (export it with minigpt export-gguf --model MODEL)", settings.gguf, worst, tol);
  subject->reset();
  return subject;
}

}  // namespace miniinfer::props
