// p10: on random architectures (layers, heads, widths), cached equals uncached, batches equal
// solo runs, and cache rows equal recompute. It needs an engine that can be built for any
// architecture, with readable cache rows.
#include "model/model_file.h"
#include "props/case_property.h"
#include "props/engine_registry.h"

namespace miniinfer::props {
namespace {

struct ArchCase : CaseCore {
  Config arch;             // a random architecture...
  uint64_t arch_seed = 0;  // ...with weights from this seed
};

class P10 final : public CaseProperty<ArchCase> {
 public:
  P10()
      : CaseProperty({"p10",
                      "on random architectures, cached equals uncached, batches equal solo runs, and cache rows equal "
                      "recompute",
                      30, {Capability::Architectures, Capability::KvRows}}) {}

  ArchCase draw() const override;
  std::optional<std::string> check(EngineUnderTest& e, ArchCase& c) const override;
  std::vector<Scenario> scenarios(const ArchCase& c) const override { return generate_scenarios(c); }
  std::string details(const ArchCase& c) const override {
    return fmt::format(" arch L={} H={} d_head={} F={} weights seed {}", c.arch.n_layer, c.arch.n_head,
                       c.arch.d_head(), c.arch.d_ff, c.arch_seed);
  }
  void write(const ArchCase& c, CaseFields& f) const override {
    f.arch = c.arch;
    f.arch_seed = c.arch_seed;
  }
  ArchCase read(const CaseFields& f) const override {
    if (!f.arch) fail("case: p10 needs an arch");
    return {f.core, *f.arch, f.arch_seed};
  }
  Target target(const ArchCase& c) const override;
};

ArchCase P10::draw() const {
  ArchCase c;
  Config& a = c.arch;
  a.n_layer = *rc::gen::inRange(1, 5);
  a.n_head = *rc::gen::inRange(1, 9);
  // d_head even from 2 to 64; by default D = H * d_head stays <= 128 to keep a case cheap,
  // --full opens the whole range (up to D = 512).
  const int max_half = std::min(32, scaled(64 / a.n_head, 32));
  a.d_model = a.n_head * 2 * *rc::gen::inRange(1, std::max(1, max_half) + 1);
  a.d_ff = 4 * a.d_model;
  a.vocab_size = static_cast<int>(context().model.vocab.size());
  a.max_seq_len = 128;
  c.arch_seed = *rc::gen::inRange<uint64_t>(0, 1000000);
  c.prompts = draw_ragged_batch(scaled(2, 4));
  c.params = *gen::genRunParams(scaled(8, 32));
  return c;
}

std::optional<std::string> P10::check(EngineUnderTest& e, ArchCase& c) const {
  if (auto f = check_cached_equals_uncached(e, c, true)) return "random architecture: " + *f;
  if (auto f = check_batch(e, c)) return "random architecture: " + *f;
  CaseCore one = c;
  one.prompts.resize(1);
  const auto g = e.generate(one.prompts, options_for(c, true));
  std::vector<int> all = c.prompts[0];
  all.insert(all.end(), g.tokens[0].begin(), g.tokens[0].end());
  c.seq = 0;
  if (auto f = check_slots(e, 0, all)) return "random architecture: " + *f;
  return std::nullopt;
}

// Our engine for the case's architecture, with the run's backend and fault.
Target P10::target(const ArchCase& c) const {
  const Context& ctx = context();
  if (!ctx.subject->has(Capability::Architectures))
    fail("case {}: a random architecture needs an engine with {}; {} has none", id(), to_string(Capability::Architectures),
         ctx.subject->name());
  struct Owned {
    Model model;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<EngineUnderTest> wrapped;
  };
  auto owned = std::make_shared<Owned>();
  owned->model = init_model(c.arch, ctx.model.vocab, c.arch_seed);
  EngineOptions eo;
  eo.backend = ctx.backend;
  eo.batch = kBatch;
  eo.threads = ctx.subject->threads();
  // On the paged cache as the subject is (a paged fault acts only there), with its block size
  // where it divides the architecture's positions.
  if (ctx.subject->has(Capability::PrefixCache)) {
    eo.layout = KvLayout::Paged;
    eo.paged.block_size = ctx.subject->prefix_block();
    while (c.arch.max_seq_len % eo.paged.block_size != 0) eo.paged.block_size /= 2;
  }
  // With the subject's sliding window (a window fault acts only there), narrowed to fit.
  if (const auto w = ctx.subject->window(); w.window > 0) {
    eo.window = std::min(w.window, c.arch.max_seq_len);
    eo.sinks = std::min(w.sinks, eo.window - 1);
  }
  owned->engine = std::make_unique<Engine>(owned->model, eo);
  owned->wrapped = wrap_engine(*owned->engine, ctx.backend, ctx.fault);
  return {owned, owned->wrapped.get()};
}

}  // namespace

const Property& p10() {
  static const P10 property;
  return property;
}

}  // namespace miniinfer::props
