// p15: chunked writes into a quantized cache equal full recompute, which rounds every K and V
// row through the same quantizer at the same boundaries (docs/quantized-cache.md): a prompt
// written in chunks whose cuts land before, on and after every flush boundary of the engine's
// residual, then decoding on; every row's logits and every K/V row against recompute.
#include "props/case_property.h"
#include "props/context.h"
#include "props/level.h"

namespace miniinfer::props {
namespace {

struct QuantCase : CaseCore {
  std::vector<int> cuts;  // chunk boundaries of the prompt
};

// Cuts one before, on and one after each flush boundary (multiples of `residual`) inside a
// prompt of n tokens, each picked or not by the draw, so shrinking drops them one by one.
std::vector<int> boundary_cuts(int n, int residual) {
  std::vector<int> near;
  for (int b = residual; residual > 0 && b < n + 1; b += residual)
    for (int cut : {b - 1, b, b + 1})
      if (cut > 0 && cut < n && (near.empty() || near.back() < cut)) near.push_back(cut);
  if (near.empty()) return *gen::genChunkBoundaries(n);  // no boundary inside: any cuts
  const auto keep = *rc::gen::container<std::vector<bool>>(near.size(), rc::gen::arbitrary<bool>());
  std::vector<int> cuts;
  for (size_t i = 0; i < near.size(); ++i)
    if (keep[i]) cuts.push_back(near[i]);
  return cuts;
}

class P15 final : public CaseProperty<QuantCase> {
 public:
  P15()
      : CaseProperty({"p15",
                      "chunked writes into a quantized cache, cut at every flush boundary, equal full recompute in "
                      "logits and K/V rows",
                      60,
                      {Capability::KvQuant}}) {}

  // Grammatical prompts end to end until the prompt reaches a drawn length of up to two flush
  // groups and a bit (or the capacity, less the decode, runs out); the length shrinks to 1.
  QuantCase draw() const override {
    const EngineUnderTest& e = *context().subject;
    const int residual = e.kv_quant().residual;
    QuantCase c;
    c.params = *gen::genRunParams(4);
    const int room = e.capacity() - c.params.max_new_tokens;
    const int target = *rc::gen::inRange(1, 2 * residual + 3);
    std::vector<int> prompt;
    for (int i = 0; i < 8 && static_cast<int>(prompt.size()) < target; ++i) {
      const gen::Prompt p = *gen::genMixedTensePrompt();
      const std::vector<int> ids = ids_of(p);
      if (i > 0 && static_cast<int>(prompt.size() + ids.size()) > room) break;
      if (i == 0) tag(p);
      prompt.insert(prompt.end(), ids.begin(), ids.end());
    }
    if (static_cast<int>(prompt.size()) > room) prompt.resize(static_cast<size_t>(std::max(room, 1)));
    c.prompts = {prompt};
    c.cuts = boundary_cuts(static_cast<int>(prompt.size()), residual);
    if (residual > 0 && static_cast<int>(prompt.size()) > residual) RC_TAG("crosses a flush");
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, QuantCase& c) const override;
  std::vector<Scenario> scenarios(const QuantCase& c) const override { return standard_scenarios(c, script(c), false); }
  std::string details(const QuantCase& c) const override {
    const EngineUnderTest::KvQuantInfo q = context().subject->kv_quant();
    return fmt::format(" cut at {} ({} cache, residual {})", c.cuts.empty() ? "nothing" : fmt::format("{}", fmt::join(c.cuts, " ")),
                       q.format, q.residual);
  }
  void write(const QuantCase& c, CaseFields& f) const override { f.cuts = c.cuts; }
  QuantCase read(const CaseFields& f) const override { return {f.core, f.cuts}; }

 private:
  static Script script(const QuantCase& c) { return chunked_script(c, c.cuts); }
  static std::optional<std::string> check_rows(EngineUnderTest& e, const std::vector<int>& prompt);
};

// Every row of every chunk against recompute's rows, then the K/V rows, then the decode (the
// script, cached against uncached, which the reporter re-runs).
std::optional<std::string> P15::check(EngineUnderTest& e, QuantCase& c) const {
  const auto& prompt = c.prompts[0];
  e.clean_slate();
  std::vector<float> chunked;
  std::vector<int> ends(c.cuts);
  ends.push_back(static_cast<int>(prompt.size()));
  int from = 0;
  for (int end : ends) {
    const auto rows = e.forward_cached(0, std::span<const int>(prompt).subspan(static_cast<size_t>(from),
                                                                              static_cast<size_t>(end - from)),
                                       true);
    chunked.insert(chunked.end(), rows.begin(), rows.end());
    from = end;
  }
  const std::vector<float> full = e.forward_uncached(prompt, true);
  const int V = e.vocab_size();
  if (auto f = judge("quantized cache, every row of the chunked prompt vs full recompute",
                     compare_logits(chunked, full, V), V, &chunked, &full))
    return *f + fmt::format(" (chunk ends at {})", fmt::join(ends, ", "));
  if (e.has(Capability::KvRows))
    if (auto f = check_rows(e, prompt)) return f;
  return check_scripts(e, script(c), "quantized cache: chunked prompt then decode vs uncached");
}

std::optional<std::string> P15::check_rows(EngineUnderTest& e, const std::vector<int>& prompt) {
  const auto cached = e.cache_rows(0), full = e.recompute_rows(prompt);
  if (!cached || !full) return std::nullopt;
  const Config& cf = e.config();
  for (int s = 0; s < static_cast<int>(prompt.size()); ++s)
    for (int l = 0; l < cf.n_layer; ++l)
      for (int h = 0; h < cf.n_head; ++h)
        if (!rows_within(cached->k_row(l, h, s), full->k_row(l, h, s)) ||
            !rows_within(cached->v_row(l, h, s), full->v_row(l, h, s)))
          return fmt::format("quantized cache: the row the cache reads differs from recompute's at layer {}, head {}, slot {}",
                             l, h, s);
  return std::nullopt;
}

}  // namespace

const Property& p15() {
  static const P15 property;
  return property;
}

}  // namespace miniinfer::props
