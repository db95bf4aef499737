// p12: with every coin a few ULP from a sampler edge, at temperatures other than 1, cached and
// uncached generation draw the same tokens. Where the logits agree bit for bit and the tokens
// do not, the loops part in the sampler, and the report says so instead of tracing.
#include <cmath>

#include "base/rng.h"
#include "props/case_property.h"
#include "props/level.h"
#include "props/verdict.h"

namespace miniinfer::props {
namespace {

struct EdgeCase : CaseCore {
  uint64_t coin_seed = 0;  // which sampler edge each draw's coin sits beside, and how near
};

constexpr const char* kSamplerParting = "the two loops draw differently";

class P12 final : public CaseProperty<EdgeCase> {
 public:
  P12()
      : CaseProperty({"p12",
                      "with every coin a few ULP from a sampler edge, at temperatures other than 1, cached and "
                      "uncached generation draw the same tokens",
                      40}) {}

  EdgeCase draw() const override {
    EdgeCase c{draw_single(16), 0};
    // Temperatures other than 1, where dividing by T and multiplying by 1/T round apart.
    c.params.temperature = *rc::gen::element(0.5f, 0.7f, 1.5f, 2.0f);
    c.coin_seed = *rc::gen::inRange<uint64_t>(0, 1000000);
    RC_TAG("beside an edge");
    return c;
  }
  std::optional<std::string> check(EngineUnderTest& e, EdgeCase& c) const override;
  // The report re-runs the case with the coins it was judged with: its levels and token lines
  // then speak of the runs the headline speaks of.
  std::vector<Scenario> scenarios(const EdgeCase& c) const override;
  std::string details(const EdgeCase& c) const override {
    return fmt::format(" coins beside the sampler's edges, seed {}", c.coin_seed);
  }
  void write(const EdgeCase& c, CaseFields& f) const override { f.coin_seed = c.coin_seed; }
  EdgeCase read(const CaseFields& f) const override { return {f.core, f.coin_seed}; }
  Failure report(const EdgeCase& c, const std::string& headline) const override;
};

// For draw (step, seq), a coin within 3 ULP of one of the sampler's edges for those logits
// (sample_edges), chosen by (coin_seed, step, seq) alone, so both loops, and a replay, put the
// same coin beside the same edge whenever they see the same logits.
CoinSource boundary_coins(const EdgeCase& c) {
  const SamplerOptions o{c.params.temperature, c.params.top_k, c.params.top_p};
  const uint64_t seed = c.coin_seed;
  return [o, seed](int step, size_t seq, std::span<const float> logits, float coin) {
    const auto edges = sample_edges(logits, o);
    if (edges.empty()) return coin;
    Rng pick = Rng::stream(seed, (static_cast<uint64_t>(step) << 16) + seq);
    float c = edges[pick.below(static_cast<uint32_t>(edges.size()))];
    const int ulps = static_cast<int>(pick.below(7)) - 3;
    for (int i = 0; i < std::abs(ulps); ++i) c = std::nextafter(c, ulps < 0 ? 0.0f : 1.0f);
    return std::min(c, std::nextafter(1.0f, 0.0f));
  };
}

std::vector<Scenario> P12::scenarios(const EdgeCase& c) const {
  std::vector<Scenario> out = generate_scenarios(c);
  for (Scenario& sc : out) sc.script.coins = sc.batch_options.coins = boundary_coins(c);
  return out;
}

std::optional<std::string> P12::check(EngineUnderTest& e, EdgeCase& c) const {
  GenerateOptions cached = options_for(c, true), uncached = options_for(c, false);
  cached.return_logits = uncached.return_logits = true;
  cached.coins = uncached.coins = boundary_coins(c);
  const auto a = e.generate(c.prompts, cached);
  const auto b = e.generate(c.prompts, uncached);
  const Closeness cl = compare_runs(a.tokens[0], b.tokens[0], a.logits[0], b.logits[0], e.vocab_size());
  auto what = judge("coins beside the sampler's edges, cached vs uncached", cl, e.vocab_size(), &a.logits[0],
                    &b.logits[0]);
  if (what && !cl.tokens_equal() && cl.bits_step < 0)
    return fmt::format("coins beside the sampler's edges, cached vs uncached: tokens differ first at step {} from "
                       "identical logits: {}", cl.token_step, kSamplerParting);
  return what;
}

Failure P12::report(const EdgeCase& c, const std::string& headline) const {
  if (!headline.ends_with(kSamplerParting)) return CaseProperty::report(c, headline);
  // Nothing to trace: the logits agree bit for bit; the loops part in the sampler. Both loops
  // again, each coin they drew kept, to name the step, the coin and both tokens.
  Target t = target(c);
  EngineUnderTest& e = *t.engine;
  const SamplerOptions o{c.params.temperature, c.params.top_k, c.params.top_p};
  std::vector<float> coins[2];
  GenerateResult runs[2];
  for (int cache = 0; cache < 2; ++cache) {
    GenerateOptions g = options_for(c, cache == 0);
    g.return_logits = true;
    const CoinSource edge = boundary_coins(c);
    g.coins = [&edge, &coins, cache](int step, size_t seq, std::span<const float> logits, float coin) {
      const float chosen = edge(step, seq, logits, coin);
      if (seq == 0) coins[cache].push_back(chosen);
      return chosen;
    };
    e.clean_slate();
    runs[cache] = e.generate(c.prompts, g);
  }
  const auto& cached = runs[0].tokens[0];
  const auto& full = runs[1].tokens[0];
  size_t step = 0;
  while (step < cached.size() && step < full.size() && cached[step] == full[step]) ++step;
  Failure f;
  f.property = id();
  f.headline = headline;
  f.case_json = to_json(c);
  f.located = true;
  const size_t V = static_cast<size_t>(e.vocab_size());
  if (step >= cached.size() || step >= full.size() || step >= coins[1].size()) {
    f.text = fmt::format("  {}\n  cause: engine error: the re-run of both loops draws the same tokens\n", headline);
    f.json = {{"property", id()}, {"headline", headline}, {"cause", "engine-error"},
              {"engine_error", "the re-run of both loops draws the same tokens"}};
    return f;
  }
  // The cached loop's coin is not known here (a fault may change it after the coin source).
  SamplerParting s{static_cast<int>(step), coins[1][step], std::nullopt, cached[step], full[step], 0};
  s.sample_gives = sample(std::span<const float>(runs[1].logits[0].data() + step * V, V), o, s.coin);
  const Tokenizer& tok = *context().tokenizer;
  f.text = fmt::format("  {}\n", headline);
  f.json = {{"property", id()}, {"headline", headline},
            {"first_parting", {{"layer", -1}, {"head", -1}, {"component", "sampler"}}}};
  report_sampler_parting(s, [&](int id) { return tok.decode(std::vector<int>{id}); }, f.text, f.json);
  return f;
}

}  // namespace

const Property& p12() {
  static const P12 property;
  return property;
}

}  // namespace miniinfer::props
