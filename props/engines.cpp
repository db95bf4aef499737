#include "props/engines.h"

#include <filesystem>

#include "base/error.h"
#include "props/scenario.h"

namespace miniinfer::props {

const char* to_string(Capability c) {
  switch (c) {
    case Capability::KvRows: return "K/V rows per layer, head and slot";
    case Capability::Trace: return "a per-layer trace";
    case Capability::Faults: return "fault injection";
    case Capability::Architectures: return "engines for random architectures";
  }
  return "?";
}

void EngineUnderTest::forward_uncached(std::span<const int> tokens, std::span<float> logits) {
  const std::vector<float> row = forward_uncached(tokens, false);
  if (logits.size() != row.size()) fail("forward_uncached: logits span of {} floats for {}", logits.size(), row.size());
  std::copy(row.begin(), row.end(), logits.begin());
}

namespace {

// Ours: every capability, and generate() is the engine's own (where faults such as stale-cache
// live), with the run's backend and fault.
class MiniInfer final : public EngineUnderTest {
 public:
  MiniInfer(Engine& engine, Backend backend, Fault fault) : e_(engine), backend_(backend), fault_(fault) {}

  std::string name() const override { return "miniinfer"; }
  nlohmann::json settings() const override { return {{"backend", to_string(backend_)}, {"fault", to_string(fault_)}}; }
  std::string describe() const override {
    return fmt::format("miniinfer (ours), backend {}, fault {}", to_string(backend_), to_string(fault_));
  }
  bool has(Capability) const override { return true; }

  int vocab_size() const override { return e_.vocab_size(); }
  int batch() const override { return e_.batch(); }
  int capacity() const override { return e_.capacity(); }
  int max_seq_len() const override { return e_.config().max_seq_len; }
  int cursor(int seq) const override { return e_.cursor(seq); }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override {
    arm();
    e_.forward_batch(chunks, logits);
  }
  void decode(std::span<const int> seqs, std::span<const int> tokens, std::span<float> logits) override {
    arm();
    e_.decode(seqs, tokens, logits);
  }
  std::vector<float> forward_cached(int seq, std::span<const int> tokens, bool all_rows) override {
    arm();
    return e_.forward_cached(seq, tokens, all_rows);
  }
  std::vector<float> forward_uncached(std::span<const int> tokens, bool all_rows) override {
    arm();
    return e_.forward_uncached(tokens, all_rows);
  }
  void truncate(int seq, int p) override { e_.truncate(seq, p); }
  void fork(int src, int dst, int prefix_len) override { e_.fork(src, dst, prefix_len); }
  void reset() override { e_.reset(); }
  void reset(int seq) override { e_.reset(seq); }
  void clean_slate() override {
    arm();
    props::clean_slate(e_);
  }
  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& options) override {
    GenerateOptions o = options;
    o.backend = backend_;
    o.fault = fault_;
    return miniinfer::generate(e_, prompts, o);
  }
  Fault fault() const override { return fault_; }
  Engine* native() override {
    arm();
    return &e_;
  }

 private:
  // The run's backend and fault, on every call: the engine is shared with the reporter.
  void arm() {
    e_.set_backend(backend_);
    e_.set_fault(fault_);
  }
  Engine& e_;
  Backend backend_;
  Fault fault_;
};

}  // namespace

std::unique_ptr<EngineUnderTest> wrap_engine(Engine& engine, Backend backend, Fault fault) {
  return std::make_unique<MiniInfer>(engine, backend, fault);
}

nlohmann::json LlamaSettings::to_json() const {
  return {{"gguf", gguf}, {"gguf_sha256", gguf_sha256}, {"kv", kv}, {"threads", threads}, {"flash", flash ? "on" : "off"}, {"ubatch", ubatch}};
}

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
    if (s.kv != "f16" && s.kv != "f32") fail("engine settings: kv must be f16 or f32, got '{}'", s.kv);
    if (s.threads < 1 || s.threads > 256) fail("engine settings: threads {} outside 1..256", s.threads);
    if (s.ubatch < 0 || s.ubatch > 65536) fail("engine settings: ubatch {} outside 0..65536", s.ubatch);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("engine settings: {}", e.what());
  }
}

std::string source_relative_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(fs::absolute(path), ec);
  const fs::path root = fs::weakly_canonical(fs::path(MINIINFER_SOURCE_DIR), ec);
  const fs::path rel = abs.lexically_relative(root);
  if (!rel.empty() && *rel.begin() != "..") return rel.string();
  return abs.string();
}

std::string gguf_open_path(const std::string& stored) {
  const std::filesystem::path p(stored);
  return p.is_absolute() ? stored : (std::filesystem::path(MINIINFER_SOURCE_DIR) / p).string();
}

#ifndef MINIINFER_HAVE_LLAMACPP
bool have_llamacpp() { return false; }
std::unique_ptr<EngineUnderTest> make_llamacpp(const LlamaSettings&, const Model&, int, int) {
  fail("--engine llamacpp: this build has no llama.cpp (run scripts/fetch-llamacpp, then cmake again)");
}
#endif

}  // namespace miniinfer::props
