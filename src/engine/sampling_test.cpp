// The sampler as a pure function of (logits, options, coin): greedy ties, top-k and top-p
// edges, the inverse-CDF draw, and generate's one coin per generated token.
#include "engine/sampling.h"

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "base/error.h"
#include "engine/engine_test_util.h"
#include "engine/generate.h"

using namespace miniinfer;
using namespace miniinfer::testing;

namespace {
SamplerOptions opts(float temperature, int top_k = 0, float top_p = 1.0f) { return {temperature, top_k, top_p}; }
}  // namespace

TEST_CASE("greedy takes the argmax, ties go to the lowest id, and the coin is ignored") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  for (float coin : {0.0f, 0.3f, 0.999f}) CHECK(sample(logits, opts(0.0f), coin) == 1);
  const std::vector<float> all_equal(7, 0.25f);
  CHECK(sample(all_equal, opts(0.0f), 0.7f) == 0);
}

TEST_CASE("the inverse-CDF draw walks ids in order and splits the unit interval by probability") {
  const std::vector<float> uniform(4, 1.0f);
  CHECK(sample(uniform, opts(1.0f), 0.0f) == 0);
  CHECK(sample(uniform, opts(1.0f), 0.26f) == 1);
  CHECK(sample(uniform, opts(1.0f), 0.51f) == 2);
  CHECK(sample(uniform, opts(1.0f), 0.9999f) == 3);
  // Over a fine grid of coins, each id's share is its softmax probability.
  const std::vector<float> logits = {0.1f, 1.5f, -0.7f, 0.9f, 0.0f};
  const float t = 0.8f;
  double z = 0.0;
  for (float l : logits) z += std::exp(l / t);
  std::vector<int> count(logits.size(), 0);
  const int n = 20000;
  int previous = 0;
  for (int i = 0; i < n; ++i) {
    const int id = sample(logits, opts(t), static_cast<float>(i) / n);
    CHECK(id >= previous);  // monotone in the coin
    previous = id;
    ++count[static_cast<size_t>(id)];
  }
  for (size_t i = 0; i < logits.size(); ++i) {
    INFO("id " << i);
    CHECK(std::abs(count[i] / double(n) - std::exp(logits[i] / t) / z) < 2.0 / n);
  }
}

TEST_CASE("top-k keeps the k highest logits, ties ranked by id, and k >= V is off") {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  for (float coin : {0.0f, 0.5f, 0.999f}) CHECK(sample(logits, opts(1.0f, 1), coin) == 1);
  // k = 2 keeps ids 1 and 2 (the tie at 3.0 is broken by id, so 4 is out).
  CHECK(sample(logits, opts(1.0f, 2), 0.0f) == 1);
  CHECK(sample(logits, opts(1.0f, 2), 0.999f) == 2);
  for (float coin : {0.0f, 0.3f, 0.77f, 0.999f})
    CHECK(sample(logits, opts(0.7f, 5), coin) == sample(logits, opts(0.7f, 0), coin));
}

TEST_CASE("top-p keeps the shortest ranked prefix reaching p, at least one id, and p = 1 is off") {
  // Probabilities 0.5, 0.3, 0.2 (ids 2, 0, 1).
  const std::vector<float> logits = {std::log(0.3f), std::log(0.2f), std::log(0.5f)};
  for (float coin : {0.0f, 0.99f}) CHECK(sample(logits, opts(1.0f, 0, 0.4f), coin) == 2);  // 0.5 >= 0.4
  // p = 0.75: 0.5 < 0.75 <= 0.8 keeps ids 2 and 0; renormalized 0.375 / 0.625 in id order.
  CHECK(sample(logits, opts(1.0f, 0, 0.75f), 0.0f) == 0);
  CHECK(sample(logits, opts(1.0f, 0, 0.75f), 0.374f) == 0);
  CHECK(sample(logits, opts(1.0f, 0, 0.75f), 0.376f) == 2);
  CHECK(sample(logits, opts(1.0f, 0, 0.75f), 0.999f) == 2);
  for (float coin : {0.0f, 0.25f, 0.6f, 0.9f, 0.999f})
    CHECK(sample(logits, opts(1.0f, 0, 1.0f), coin) == sample(logits, opts(1.0f), coin));
  // A tiny p keeps just the top id; with top-k too, top-p ranks within the k kept.
  CHECK(sample(logits, opts(1.0f, 2, 1e-6f), 0.999f) == 2);
}

TEST_CASE("bad sampling options are one-line errors naming the option") {
  CHECK_THROWS_WITH(validate(opts(-1.0f)), "sampling: temperature must be a finite number >= 0, got -1");
  CHECK_THROWS_WITH(validate(opts(1.0f, -2)), "sampling: top-k must be >= 0 (0 = off), got -2");
  CHECK_THROWS_WITH(validate(opts(1.0f, 0, 0.0f)), "sampling: top-p must lie in (0, 1], got 0");
  CHECK_THROWS_WITH(validate(opts(1.0f, 0, 1.5f)), "sampling: top-p must lie in (0, 1], got 1.5");
}

TEST_CASE("generate draws exactly one coin per generated token from the sequence's own stream") {
  const Config c = make_config(40, 16, 2, 2, 32);
  const Model model = random_model(c, 6);
  GenerateOptions o;
  o.max_new_tokens = 25;
  o.seed = 1234;
  o.temperature = 1.3f;
  const std::vector<int> prompt = {3, 1, 4};
  // By hand: prefill, then one coin and one decode per token, stream (seed, 1) for sequence 1.
  Engine engine(model);
  Rng stream = Rng::stream(o.seed, 1);
  std::vector<int> expected;
  std::vector<float> logits = engine.forward_cached(0, prompt);
  for (int i = 0; i < o.max_new_tokens; ++i) {
    expected.push_back(sample(logits, opts(o.temperature), stream.uniform()));
    logits = engine.forward_cached(0, std::span(&expected.back(), 1));
  }
  for (bool cache : {true, false}) {
    o.cache = cache;
    const GenerateResult r = generate(model, {{0}, prompt}, o);
    INFO((cache ? "cached" : "uncached"));
    CHECK(r.tokens[1] == expected);
  }
}

TEST_CASE("temperatures below the floor are refused, and non-finite logits are never sampled") {
  CHECK_THROWS_WITH(validate(opts(1e-39f)), "sampling: temperature 1e-39 is below the floor 0.001 (use 0 for greedy decoding)");
  CHECK_NOTHROW(validate(opts(kMinTemperature)));
  CHECK_NOTHROW(validate(opts(0.0f)));
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> with_nan = {1.0f, nan, 3.0f, 2.0f}, with_inf = {1.0f, 2.0f, -inf, 0.0f};
  for (const SamplerOptions& o : {opts(0.0f), opts(1.0f), opts(1.0f, 2), opts(0.7f, 0, 0.9f), opts(1.0f, 3, 0.5f)}) {
    CHECK_THROWS_WITH(sample(with_nan, o, 0.5f), "sampling: the logit of token 1 is nan");
    CHECK_THROWS_WITH(sample(with_inf, o, 0.5f), "sampling: the logit of token 2 is -inf");
  }
  // Finite logits whose quotient by a small temperature overflows float.
  const std::vector<float> huge = {3e38f, -3e38f, 1.0f};
  CHECK_THROWS_WITH(sample(huge, opts(0.5f), 0.5f), "sampling: a logit divided by the temperature 0.5 overflows");
}

namespace {
// The coin `ulps` steps of float from `edge`, kept in [0, 1).
float beside(float edge, int ulps) {
  float c = edge;
  for (int i = 0; i < std::abs(ulps); ++i) c = std::nextafter(c, ulps < 0 ? 0.0f : 1.0f);
  return std::min(c, std::nextafter(1.0f, 0.0f));
}
}  // namespace

TEST_CASE("sample_edges are where the draw moves to the next candidate, a few ULP either side") {
  Rng rng(11);
  for (const SamplerOptions& o : {opts(0.7f), opts(1.6f, 5), opts(0.5f, 0, 0.8f), opts(1.3f, 7, 0.9f)}) {
    std::vector<float> logits(24);
    for (float& x : logits) x = 3.0f * rng.normal();
    const auto edges = sample_edges(logits, o);
    REQUIRE(!edges.empty());
    for (float e : edges) {
      INFO("edge " << e << " temperature " << o.temperature);
      CHECK(sample(logits, o, beside(e, -4)) < sample(logits, o, beside(e, 4)));
    }
  }
  CHECK(sample_edges(std::vector<float>{1.0f, 2.0f}, opts(0.0f)).empty());  // greedy ignores the coin
}

TEST_CASE("both loops draw every token through sample(): at coins beside its edges, each token is sample()'s") {
  const Config c = make_config(40, 16, 2, 2, 32);
  const Model model = random_model(c, 9);
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.seed = 5;
  o.temperature = 0.7f;  // not 1: a multiply by 1/T rounds apart from the divide
  o.top_p = 0.95f;
  o.return_logits = true;
  struct Draw {
    std::vector<float> logits;
    float coin;
  };
  for (bool cache : {true, false}) {
    std::vector<Draw> draws;
    Rng pick(77);
    o.cache = cache;
    o.coins = [&](int, size_t, std::span<const float> logits, float coin) {
      const auto edges = sample_edges(logits, {o.temperature, o.top_k, o.top_p});
      if (!edges.empty()) coin = beside(edges[pick.below(static_cast<uint32_t>(edges.size()))], static_cast<int>(pick.below(7)) - 3);
      draws.push_back({std::vector<float>(logits.begin(), logits.end()), coin});
      return coin;
    };
    const GenerateResult r = generate(model, {{1, 2, 3}, {4}}, o);
    INFO((cache ? "cached loop" : "uncached loop"));
    REQUIRE(draws.size() == 2u * static_cast<size_t>(o.max_new_tokens));
    // Draw i of the loop is step i / 2 of sequence i % 2 (both loops interleave sequences).
    for (size_t i = 0; i < draws.size(); ++i)
      CHECK(r.tokens[i % 2][i / 2] == sample(draws[i].logits, {o.temperature, o.top_k, o.top_p}, draws[i].coin));
  }
}
