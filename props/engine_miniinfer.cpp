// Ours behind EngineUnderTest: every capability (the prefix cache only on the paged layout), and
// generate() is the engine's own (where faults such as stale-cache live), with the run's backend
// and fault. --kv-cache chooses the layout; a paged fault chooses the paged one by itself.
#include <algorithm>

#include <fmt/format.h>

#include "base/error.h"
#include "base/threads.h"
#include "props/context.h"
#include "props/engine_registry.h"
#include "props/scenario.h"

namespace miniinfer::props {
namespace {

class MiniInfer final : public EngineUnderTest {
 public:
  MiniInfer(Engine& engine, Backend backend, Fault fault)
      : e_(engine), backend_(backend), fault_(fault), threads_(engine.threads()) {}
  MiniInfer(std::unique_ptr<Engine> owned, Backend backend, Fault fault, nlohmann::json settings)
      : owned_(std::move(owned)), e_(*owned_), backend_(backend), fault_(fault), settings_(std::move(settings)),
        threads_(settings_.value("threads", 1)) {}

  std::string name() const override { return "miniinfer"; }
  // The contiguous layout's settings are those saved before the paged cache existed, and one
  // thread's those saved before --threads, so every saved case still writes and replays the
  // same bytes.
  nlohmann::json settings() const override {
    nlohmann::json j = {{"backend", to_string(backend_)}, {"fault", to_string(fault_)}};
    if (const int threads = settings_.value("threads", 1); threads != 1) j["threads"] = threads;
    if (e_.layout() == KvLayout::Paged)
      j.update({{"kv_cache", "paged"}, {"block_size", settings_.value("block_size", 16)},
                {"pool_blocks", settings_.value("pool_blocks", 0)}});
    if (e_.window().on()) j.update({{"window", e_.window().window}, {"sinks", e_.window().sinks}});
    if (e_.kv_quant() != KvQuant::F32) j.update({{"kv_quant", to_string(e_.kv_quant())}, {"kv_residual", e_.kv_residual()}});
    return j;
  }
  std::string describe() const override {
    std::string kv;
    if (e_.layout() == KvLayout::Paged) {
      const int pool = settings_.value("pool_blocks", 0);
      kv = fmt::format(", kv cache paged (blocks of {}, pool {}{})", settings_.value("block_size", 16),
                       pool ? fmt::format("{} blocks", pool) : std::string("batch x capacity"),
                       acts_on_paged(fault_) ? "; chosen by the fault, which acts on it" : "");
    }
    if (e_.window().on())
      kv += fmt::format(", sliding window {} with {} sinks (ring of {}{})", e_.window().window, e_.window().sinks,
                        e_.window().ring, acts_on_window(fault_) ? "; chosen by the fault, which acts on it" : "");
    if (e_.kv_quant() != KvQuant::F32)
      kv += fmt::format(", kv cache {} (residual {}{})", to_string(e_.kv_quant()), e_.kv_residual(),
                        acts_on_quantized(fault_) ? "; chosen by the fault, which acts on it" : "");
    return fmt::format("miniinfer (ours), backend {}, fault {}, {} thread{}{}", to_string(backend_), to_string(fault_),
                       threads_, threads_ == 1 ? "" : "s", kv);
  }
  bool has(Capability c) const override {
    switch (c) {
      case Capability::PrefixCache: return paged();
      case Capability::KvQuant: return kv_quant().format != "f32";  // the quantized-cache options (issue 31)
      case Capability::Window: return window().window > 0;         // the sliding-window options (issue 31)
      default: return true;
    }
  }
  std::string lacks_why(Capability c) const override {
    if (c == Capability::Window && !window().window) return "no sliding window: --window W (and --sinks S)";
    return c == Capability::PrefixCache && !paged() ? "the prefix cache is the paged layout's: --kv-cache paged" : "";
  }
  WindowInfo window() const override {
    const WindowSpec& w = e_.window();
    return {w.window, w.sinks, w.on() ? w.ring - (w.window - w.sinks) + 1 : 0};
  }
  const Config& config() const override { return e_.config(); }
  // int8 scales one head's d_head floats; bf16 has no scale.
  KvQuantInfo kv_quant() const override {
    const KvQuant q = e_.kv_quant();
    return {to_string(q), q == KvQuant::Int8 ? e_.config().d_head() : 0, e_.kv_residual()};
  }

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
  // The engine's own verify and rollback (Pass::Verify, the rollback hook), so the speculative
  // faults act here as they do in generate's speculative loop.
  std::vector<float> verify(int seq, std::span<const int> tokens) override {
    Call call(*this);
    return e_.verify(seq, tokens);
  }
  void rollback(int seq, int keep) override { e_.rollback(seq, keep); }
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
  void set_threads(int threads) override { threads_ = std::max(threads, 1); }
  int threads() const override { return threads_; }

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

  Submitted submit(int seq, std::span<const int> prompt) override {
    Call call(*this);
    Submitted s;
    s.logits.resize(static_cast<size_t>(e_.vocab_size()));
    s.reused = e_.submit(seq, prompt, s.logits);
    return s;
  }
  int prefix_block() const override { return paged() ? e_.paged()->block_size() : 0; }
  int pool_slots() const override { return paged() ? e_.paged()->pool_blocks() * e_.paged()->block_size() : 0; }
  void free(int seq) override {
    arm();
    e_.free(seq);
  }
  std::string cache_check() override { return paged() ? e_.paged()->check() : ""; }
  BlockSlot locate(int seq, int slot) override { return paged() ? e_.paged()->locate(seq, slot) : BlockSlot{}; }
  std::vector<int> block_table(int seq) override {
    if (!paged()) return {};
    const auto t = e_.paged()->table(seq);
    return {t.begin(), t.end()};
  }
  bool preempted(int seq) override { return paged() && e_.paged()->preempted(seq); }
  PagedStats serving_stats() override { return paged() ? e_.paged()->stats() : PagedStats{}; }

 private:
  bool paged() const { return e_.layout() == KvLayout::Paged; }
  // The run's backend, fault and threads, on every call: the Engine may be shared with the
  // reporter.
  void arm() {
    e_.set_backend(backend_);
    e_.set_fault(fault_);
    e_.set_threads(threads_);
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
  nlohmann::json settings_ = nlohmann::json::object();  // as made: the paged layout's sizes
  int threads_ = 1;  // the forward calls' threads: --threads (settings_), or p14's for a run
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

// Every K and V float of `seq`'s slab, past the cursor too. The paged layout has no slab (its
// blocks move: copy-on-write, eviction, preemption), nor has the quantized cache (codes, not
// floats): cache_rows stand in there.
std::vector<float> MiniInfer::cache_slots(int seq) {
  if (paged() || e_.kv_quant() != KvQuant::F32) return {};
  const size_t n = static_cast<size_t>(e_.cache().capacity()) * e_.config().d_model;  // slots (a window's fewer)
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
  eo.layout = layout_from_name(settings.value("kv_cache", std::string("contiguous")));
  eo.paged.block_size = settings.value("block_size", eo.paged.block_size);
  eo.paged.pool_blocks = settings.value("pool_blocks", 0);
  eo.paged.placement_seed = settings.value("placement_seed", uint64_t{0});
  eo.threads = settings.value("threads", 1);
  eo.window = settings.value("window", 0);
  eo.sinks = settings.value("sinks", 0);
  eo.kv_quant = kv_quant_from_name(settings.value("kv_quant", std::string("f32")));
  eo.kv_residual = settings.value("kv_residual", 0);
  if (eo.layout == KvLayout::Paged && capacity % eo.paged.block_size != 0)
    fail("--block-size {}: does not divide the {} slots of a sequence", eo.paged.block_size, capacity);
  return std::make_unique<MiniInfer>(std::make_unique<Engine>(model, eo), eo.backend,
                                     fault_from_name(settings.at("fault").get<std::string>()), settings);
}

// A number flag's value within lo..hi (the flag table let only digits through).
int number_in(const std::string& flag, const std::string& text, int lo, int hi) {
  const long long n = text.size() > 9 ? hi + 1LL : std::stoll(text);
  if (n < lo || n > hi) fail("{}: {} is outside {}..{}", flag, text, lo, hi);
  return static_cast<int>(n);
}

// The layout's settings from --kv-cache, --block-size and --pool-blocks: contiguous adds nothing
// (the settings saved before the paged cache), paged its sizes. A paged fault picks the paged
// layout by itself; naming contiguous with it is refused (the fault would never act).
nlohmann::json layout_settings(const std::string& kv, const std::string& block, const std::string& pool, Fault fault,
                               bool kv_given) {
  const KvLayout layout = kv_given ? layout_from_name(kv) : acts_on_paged(fault) ? KvLayout::Paged : KvLayout::Contiguous;
  if (layout == KvLayout::Contiguous) {
    if (acts_on_paged(fault))
      fail("--kv-cache contiguous: fault {} acts on the paged cache only (leave --kv-cache out, or give paged)",
           to_string(fault));
    if (!block.empty()) fail("--block-size {}: only the paged cache has blocks (add --kv-cache paged)", block);
    if (!pool.empty()) fail("--pool-blocks {}: only the paged cache has a pool (add --kv-cache paged)", pool);
    return nlohmann::json::object();
  }
  if (acts_on_contiguous_only(fault))
    fail("--kv-cache paged: fault {} acts on the contiguous cache's own operations only (give --kv-cache contiguous)",
         to_string(fault));
  const int b = block.empty() ? 16 : number_in("--block-size", block, 1, 512);
  if ((b & (b - 1)) != 0) fail("--block-size {}: not a power of two", block);
  return {{"kv_cache", "paged"}, {"block_size", b}, {"pool_blocks", pool.empty() ? 0 : number_in("--pool-blocks", pool, 0, 1 << 20)}};
}

// The quantized cache's settings from --kv-quant and --kv-residual: f32 adds nothing (the
// settings saved before it). A quantized-cache fault picks int8 with a residual of 4 by itself;
// naming f32 with it is refused (the fault would never act).
nlohmann::json quant_settings(const std::string& quant, const std::string& residual, Fault fault, bool quant_given,
                              const nlohmann::json& layout) {
  KvQuant q = acts_on_quantized(fault) ? KvQuant::Int8 : KvQuant::F32;
  try {
    if (quant_given) q = kv_quant_from_name(quant);
  } catch (const Error& e) {
    fail("--kv-quant: {}", e.what());
  }
  if (q == KvQuant::F32) {
    if (acts_on_quantized(fault))
      fail("--kv-quant f32: fault {} acts on the quantized cache only (leave --kv-quant out, or give int8)", to_string(fault));
    if (!residual.empty()) fail("--kv-residual {}: only a quantized cache has a residual (add --kv-quant int8 or bf16)", residual);
    return nlohmann::json::object();
  }
  if (layout.value("kv_cache", std::string()) == "paged")
    fail("--kv-quant {}: the quantized cache is contiguous, not --kv-cache paged", quant);
  if (acts_on_contiguous_only(fault))
    fail("--kv-quant {}: fault {} acts on the float cache's own operations only (leave --kv-quant out)", quant,
         to_string(fault));
  const int r = residual.empty() ? (acts_on_quantized(fault) ? 4 : 0) : number_in("--kv-residual", residual, 0, Config::kMaxSeqLen);
  if ((r & (r - 1)) != 0) fail("--kv-residual {}: not a power of two", residual);
  return {{"kv_quant", to_string(q)}, {"kv_residual", r}};
}

std::string given_or_empty(const RunConfig& run, const char* flag) {
  return run.given.count(flag) ? flag_value(run, flag) : std::string();
}

// The sliding window's settings from --window and --sinks: nothing without a window (the
// settings saved before it existed); a window fault picks W 8 with 2 sinks by itself.
nlohmann::json window_settings(const std::string& window, const std::string& sinks, Fault fault) {
  const int w = window.empty() ? 0 : number_in("--window", window, 0, 1 << 20);
  if (w == 0 && !sinks.empty()) fail("--sinks {}: sinks need a window (add --window W, W > {})", sinks, sinks);
  if (w == 0) return acts_on_window(fault) ? nlohmann::json{{"window", 8}, {"sinks", 2}} : nlohmann::json::object();
  const int s = sinks.empty() ? 0 : number_in("--sinks", sinks, 0, 1 << 20);
  if (s >= w) fail("--window {}: must be larger than the sink count {} (--sinks)", w, s);
  return {{"window", w}, {"sinks", s}};
}

nlohmann::json settings(const RunConfig& run) {
  const Fault fault = run.inject.empty() ? Fault::None : fault_from_name(run.inject);
  nlohmann::json j = {{"backend", run.backend}, {"fault", run.inject.empty() ? "none" : run.inject}};
  if (const int threads = number_in("--threads", flag_value(run, "--threads"), 1, kMaxThreads); threads != 1)
    j["threads"] = threads;
  j.update(layout_settings(flag_value(run, "--kv-cache"), given_or_empty(run, "--block-size"),
                           given_or_empty(run, "--pool-blocks"), fault, run.given.count("--kv-cache") > 0));
  j.update(window_settings(given_or_empty(run, "--window"), given_or_empty(run, "--sinks"), fault));
  if (j.contains("window") && j.value("kv_cache", std::string()) == "paged")
    fail("--window {}: the sliding window needs the contiguous kv cache (leave --kv-cache paged out)", j["window"].get<int>());
  j.update(quant_settings(flag_value(run, "--kv-quant"), given_or_empty(run, "--kv-residual"), fault,
                          run.given.count("--kv-quant") > 0, j));
  return j;
}

// replay_case has already chosen the backend and fault (the case's, unless this run names others);
// the layout is the case's too, unless this run names one.
nlohmann::json replay(const std::string& path, const nlohmann::json& saved, const RunConfig& run) {
  const Fault fault = context().fault;
  nlohmann::json j = {{"backend", to_string(context().backend)}, {"fault", to_string(fault)}};
  try {
    const int threads = run.given.count("--threads") ? number_in("--threads", flag_value(run, "--threads"), 1, kMaxThreads)
                        : saved.is_object()          ? saved.value("threads", 1)
                                                     : 1;
    if (threads < 1 || threads > kMaxThreads) fail("replay {}: engine_settings: threads {} outside 1..{}", path, threads, kMaxThreads);
    if (threads != 1) j["threads"] = threads;
    if (run.given.count("--kv-cache") || run.given.count("--block-size") || run.given.count("--pool-blocks")) {
      j.update(layout_settings(flag_value(run, "--kv-cache"), given_or_empty(run, "--block-size"),
                               given_or_empty(run, "--pool-blocks"), fault, run.given.count("--kv-cache") > 0));
    } else if (saved.is_object() && saved.value("kv_cache", std::string()) == "paged") {
      j.update(layout_settings("paged", std::to_string(saved.value("block_size", 16)),
                               saved.value("pool_blocks", 0) ? std::to_string(saved.value("pool_blocks", 0)) : "",
                               fault, true));
    } else {
      j.update(layout_settings("contiguous", "", "", fault, false));
    }
    if (run.given.count("--window") || run.given.count("--sinks"))
      j.update(window_settings(given_or_empty(run, "--window"), given_or_empty(run, "--sinks"), fault));
    else if (saved.is_object() && saved.contains("window"))
      j.update(window_settings(std::to_string(saved.value("window", 0)), std::to_string(saved.value("sinks", 0)), fault));
    else
      j.update(window_settings("", "", fault));
    if (run.given.count("--kv-quant") || run.given.count("--kv-residual")) {
      j.update(quant_settings(flag_value(run, "--kv-quant"), given_or_empty(run, "--kv-residual"), fault,
                              run.given.count("--kv-quant") > 0, j));
    } else if (saved.is_object() && saved.contains("kv_quant")) {
      const int r = saved.value("kv_residual", 0);
      j.update(quant_settings(saved.value("kv_quant", std::string("f32")), r ? std::to_string(r) : "", fault, true, j));
    } else {
      j.update(quant_settings("f32", "", fault, false, j));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("replay {}: engine_settings: {}", path, e.what());
  }
  return j;
}

// p11's paged engine: blocks of --block-size when they divide the sequences' slots, else of 4
// (or 1), and a pool far smaller than the sequences' slots, so that programs evict and preempt.
nlohmann::json for_programs(const nlohmann::json& settings, int capacity, int pool_slots, uint64_t placement) {
  if (settings.value("kv_cache", std::string()) != "paged") return settings;
  nlohmann::json j = settings;
  int block = settings.value("block_size", 16);
  if (capacity % block != 0) block = capacity % 4 == 0 ? 4 : 1;
  j["block_size"] = block;
  j["pool_blocks"] = (pool_slots + block - 1) / block;
  j["placement_seed"] = placement;
  return j;
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
               .field = &RunConfig::inject},
              {.name = "--kv-cache",
               .arg = " LAYOUT",
               .help = "contiguous (default) or paged: blocks, prefix caching, copy-on-write,\n"
                       "eviction and preemption (a paged fault picks paged by itself; p13 needs it)",
               .fallback = "contiguous",
               .elsewhere = "the KV layout is our engine's; {} has its own"},
              {.name = "--block-size",
               .arg = " N",
               .help = "the paged cache's slots per block, a power of two (default 16;\n"
                       "p11's 12-slot sequences take blocks of 4 unless N divides 12)",
               .fallback = "16",
               .number = true,
               .elsewhere = "blocks are our paged cache's; {} has none"},
              {.name = "--pool-blocks",
               .arg = " N",
               .help = "the paged cache's pool in blocks (0, the default: batch x capacity /\n"
                       "block size; p11 always runs a pool of 28 slots for 8 sequences of 12)",
               .fallback = "0",
               .number = true,
               .elsewhere = "the block pool is our paged cache's; {} has none"},
              {.name = "--threads",
               .arg = " N",
               .help = "the threads every forward call runs on (default 1; saved with a case,\n"
                       "which replays with it); p14 sets its own pair per case",
               .fallback = "1",
               .number = true,
               .elsewhere = "--threads is our engine's; {} takes --llama-threads"},
              {.name = "--window",
               .arg = " W",
               .help = "a sliding-window cache: each query reads the first S positions (--sinks)\n"
                       "and the newest W - S (docs/sliding-window.md; p16 needs it; a window\n"
                       "fault picks W 8, S 2 by itself)",
               .fallback = "0",
               .number = true,
               .elsewhere = "the sliding window is our engine's; {} has none"},
              {.name = "--sinks",
               .arg = " S",
               .help = "the sliding window's attention sinks, 0..W-1 (default 0; needs --window)",
               .fallback = "0",
               .number = true,
               .elsewhere = "the sliding window is our engine's; {} has none"},
              {.name = "--kv-quant",
               .arg = " FORMAT",
               .help = "the contiguous cache's K/V format: f32 (default), bf16 or int8 (a scale per\n"
                       "slot and head); a quantized-cache fault picks int8 by itself (p15 needs it)",
               .fallback = "f32",
               .elsewhere = "--kv-quant is our engine's; {} takes --llama-kv"},
              {.name = "--kv-residual",
               .arg = " R",
               .help = "with --kv-quant: the newest rows stay float, quantized R at a time (a\n"
                       "power of two up to the capacity; default 0, or 4 with a quantized-cache fault)",
               .fallback = "0",
               .number = true,
               .elsewhere = "--kv-residual is our engine's; {} has none"}},
    .flag_prefix = nullptr,
    .settings = settings,
    .read_saved = nullptr,
    .replay = replay,
    .make = make,
    .for_programs = for_programs,
};

}  // namespace miniinfer::props
