// Ours behind EngineUnderTest: every capability, and generate() is the engine's own (where
// faults such as stale-cache live), with the run's backend and fault.
#include <fmt/format.h>

#include "base/error.h"
#include "props/context.h"
#include "props/engine_registry.h"
#include "props/scenario.h"

namespace miniinfer::props {
namespace {

class MiniInfer final : public EngineUnderTest {
 public:
  MiniInfer(Engine& engine, Backend backend, Fault fault) : e_(engine), backend_(backend), fault_(fault) {}
  MiniInfer(std::unique_ptr<Engine> owned, Backend backend, Fault fault)
      : owned_(std::move(owned)), e_(*owned_), backend_(backend), fault_(fault) {}

  std::string name() const override { return "miniinfer"; }
  nlohmann::json settings() const override { return {{"backend", to_string(backend_)}, {"fault", to_string(fault_)}}; }
  std::string describe() const override {
    return fmt::format("miniinfer (ours), backend {}, fault {}", to_string(backend_), to_string(fault_));
  }
  bool has(Capability) const override { return true; }
  const Config& config() const override { return e_.config(); }

  int vocab_size() const override { return e_.vocab_size(); }
  int batch() const override { return e_.batch(); }
  int capacity() const override { return e_.capacity(); }
  int max_seq_len() const override { return e_.config().max_seq_len; }
  int cursor(int seq) const override { return e_.cursor(seq); }

  void forward_batch(std::span<const Chunk> chunks, std::span<float> logits) override {
    Call call(*this);
    e_.forward_batch(chunks, logits);
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
  void truncate(int seq, int p) override { e_.truncate(seq, p); }
  void fork(int src, int dst, int prefix_len) override { e_.fork(src, dst, prefix_len); }
  void reset() override { e_.reset(); }
  void reset(int seq) override { e_.reset(seq); }
  void clean_slate() override {
    arm();
    props::clean_slate(e_);
    trace_ = nullptr;  // a trace_call whose call never came (an Error on the way) is void
  }
  GenerateResult generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& options) override;
  Fault fault() const override { return fault_; }

  bool trace_call(Trace* trace, int nth) override {
    trace_ = trace;
    countdown_ = nth;
    return true;
  }
  std::optional<KvRows> cache_rows(int seq) override;
  std::vector<float> cache_slots(int seq) override;
  std::optional<KvRows> recompute_rows(std::span<const int> tokens) override {
    Call call(*this);
    KvRows kv;
    e_.forward_uncached(tokens, false, &kv);
    return kv;
  }
  void start_request(int seq) override {
    arm();
    e_.start_request(seq);
  }

 private:
  // The run's backend and fault, on every call: the Engine may be shared with the reporter.
  void arm() {
    e_.set_backend(backend_);
    e_.set_fault(fault_);
  }
  // Every forward call counts down to the one trace_call asked for, which runs with the trace
  // attached (and only that one).
  struct Call {
    explicit Call(MiniInfer& s) : s_(s) {
      s_.arm();
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
    MiniInfer& s_;
    bool armed_ = false;
  };
  std::unique_ptr<Engine> owned_;
  Engine& e_;
  Backend backend_;
  Fault fault_;
  Trace* trace_ = nullptr;  // trace_call's: the call countdown_ calls from now
  int countdown_ = 0;
};

GenerateResult MiniInfer::generate(const std::vector<std::vector<int>>& prompts, const GenerateOptions& options) {
  GenerateOptions o = options;
  o.backend = backend_;
  o.fault = fault_;
  if (!trace_) return miniinfer::generate(e_, prompts, o);
  // A traced call inside generate(): the whole run traced aside, the one call kept.
  if (o.trace) fail("miniinfer: generate with a trace while trace_call waits for a call");
  Trace all;
  all.positions = trace_->positions;
  all.cache_reads = trace_->cache_reads;
  o.trace = &all;
  GenerateResult result = miniinfer::generate(e_, prompts, o);
  for (TraceRecord& r : all.records)
    if (r.call == countdown_) {
      r.call = trace_->calls;
      trace_->records.push_back(std::move(r));
    }
  if (countdown_ < all.calls) {
    ++trace_->calls;
    trace_ = nullptr;
  } else {
    countdown_ -= all.calls;
  }
  return result;
}

std::optional<KvRows> MiniInfer::cache_rows(int seq) { return e_.cache_rows(seq); }

std::vector<float> MiniInfer::cache_slots(int seq) {
  const size_t n = static_cast<size_t>(e_.capacity()) * e_.config().d_model;
  std::vector<float> all;
  for (int l = 0; l < e_.config().n_layer; ++l) {
    all.insert(all.end(), e_.cache().k_slab(l, seq), e_.cache().k_slab(l, seq) + n);
    all.insert(all.end(), e_.cache().v_slab(l, seq), e_.cache().v_slab(l, seq) + n);
  }
  return all;
}

std::unique_ptr<EngineUnderTest> make(const nlohmann::json& settings, const Model& model, int batch, int capacity) {
  EngineOptions eo;
  eo.backend = backend_from_name(settings.at("backend").get<std::string>());
  eo.batch = batch;
  eo.capacity = capacity;
  return std::make_unique<MiniInfer>(std::make_unique<Engine>(model, eo), eo.backend,
                                     fault_from_name(settings.at("fault").get<std::string>()));
}

nlohmann::json settings(const RunConfig& run) {
  return {{"backend", run.backend}, {"fault", run.inject.empty() ? "none" : run.inject}};
}

// replay_case has already chosen the backend and fault (the case's, unless this run names others).
nlohmann::json replay(const std::string&, const nlohmann::json&, const RunConfig&) {
  return {{"backend", to_string(context().backend)}, {"fault", to_string(context().fault)}};
}

}  // namespace

std::unique_ptr<EngineUnderTest> wrap_engine(Engine& engine, Backend backend, Fault fault) {
  return std::make_unique<MiniInfer>(engine, backend, fault);
}

const EngineDecl kMiniInfer = {
    .name = "miniinfer",
    .note = "ours, the default",
    .flags = {{.name = "--backend",
               .arg = " NAME",
               .help = "invariant (default) or eigen (library GEMMs: known to break bitwise)",
               .fallback = "invariant",
               .elsewhere = "backends are our engine's; {} has its own",
               .field = &RunConfig::backend},
              {.name = "--inject",
               .arg = " FAULT",
               .help = "inject a cache fault (docs/faults.md); 'list' lists them",
               .fallback = "",
               .elsewhere = "faults are our engine's; {} has none",
               .field = &RunConfig::inject}},
    .flag_prefix = nullptr,
    .settings = settings,
    .read_saved = nullptr,
    .replay = replay,
    .make = make,
};

}  // namespace miniinfer::props
