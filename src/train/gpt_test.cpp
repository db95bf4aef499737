// Gradient checks of the whole model: for random small configs, the analytic gradient of
// every parameter tensor matches central finite differences of the double-precision loss.
//
// Tolerance, per tensor, with h = 1e-5:
//   max |analytic - numeric| <= 1e-6 * max |numeric| + 64 eps max(1, |L|) / h.
// The first term is the relative error: the five-point central difference truncates at
// h^4 f^(5)/30 ~ 1e-20, so a correct backward measures ~1e-9 relative to gradients of
// ~1e-2; a wrong or missing term is off by 1e-3 or more. (The three-point difference,
// h^2 f'''/6, broke 1e-6 at sharply curved points of LayerNorm over 4 channels in about 1
// case in 200.) The second is the finite difference's own resolution: the loss is logsumexp
// minus a logit, terms of size >= 1 even when L is tiny, so it is known to a few eps max(1, |L|)
// and a derivative taken over h is noise below ~eps / h ~ 1e-11 (measured: <= 1.3e-11). It
// matters only for tensors whose true gradient is ~0 (q_proj at T = 1 is exactly 0).
#include "train/gpt.h"

#include <fmt/format.h>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <ostream>

#include "base/rng.h"
#include "engine/engine.h"
#include "train/gradcheck.h"

using namespace miniinfer;
using namespace miniinfer::train;

namespace {

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;

struct GradCase {
  Config config;
  int B = 1, T = 1;
  uint64_t seed = 0;
};

std::ostream& operator<<(std::ostream& os, const GradCase& c) {
  return os << fmt::format("V={} D={} L={} H={} F={} theta={} B={} T={} seed={}", c.config.vocab_size,
                           c.config.d_model, c.config.n_layer, c.config.n_head, c.config.d_ff,
                           c.config.rope_theta, c.B, c.T, c.seed);
}

// Small enough that every element of every tensor can be perturbed in well under a second.
rc::Gen<GradCase> genGradCase() {
  return rc::gen::apply(
      [](int V, int H, int half, int L, int F, int theta_pow, int B, int T, uint64_t seed) {
        GradCase c;
        c.config.vocab_size = V;
        c.config.n_head = H;
        // d_model >= 4: LayerNorm over 2 channels is sign(x1 - x2), whose curvature near
        // x1 = x2 defeats any finite-difference step.
        c.config.d_model = std::max(4, H * 2 * half);
        if (c.config.d_model % H != 0 || c.config.d_head() % 2 != 0) c.config.n_head = 1;
        c.config.n_layer = L;
        c.config.d_ff = F;
        c.config.rope_theta = theta_pow == 0 ? 10000.0 : 2.0 + theta_pow;  // small theta: large angles
        c.config.max_seq_len = 16;
        c.config.train_ctx = T;
        c.B = B;
        c.T = T;
        c.seed = seed;
        return c;
      },
      rc::gen::inRange(2, 9), rc::gen::inRange(1, 3), rc::gen::inRange(1, 3), rc::gen::inRange(1, 3),
      rc::gen::inRange(2, 13), rc::gen::inRange(0, 4), rc::gen::inRange(1, 3), rc::gen::inRange(1, 6),
      rc::gen::arbitrary<uint64_t>());
}

// Weights far from init (LayerNorm weights around 1, biases non-zero) so every term matters.
void randomize(Params<double>& p, const Config& c, Rng& rng) {
  for (auto& t : tensors_of(p, c)) {
    const bool ln_weight = t.name.find("ln") != std::string::npos && t.name.ends_with(".weight");
    for (double& x : t.data) x = (ln_weight ? 1.0 : 0.0) + 0.5 * rng.normal();
  }
}

std::vector<int> random_tokens(Rng& rng, size_t n, int V) {
  std::vector<int> out(n);
  for (int& t : out) t = static_cast<int>(rng.below(static_cast<uint32_t>(V)));
  return out;
}

struct TensorCheck {
  std::string name;
  size_t size = 0;
  GradCheck check;
  double limit = 0;  // the largest max_abs_error the tolerance allows
  bool ok() const { return check.max_abs_error <= limit; }
};

// Random weights and tokens from c.seed, one backward, then every element perturbed.
std::vector<TensorCheck> check_every_tensor(const GradCase& c) {
  Rng rng(c.seed);
  Gpt<double> gpt(c.config, c.B, c.T);
  randomize(gpt.params, c.config, rng);
  const std::vector<int> inputs = random_tokens(rng, static_cast<size_t>(c.B) * c.T, c.config.vocab_size);
  const std::vector<int> targets = random_tokens(rng, inputs.size(), c.config.vocab_size);
  const double loss = gpt.forward(inputs, targets, c.B, c.T);
  gpt.backward();
  auto params = tensors_of(gpt.params, c.config);
  auto grads = tensors_of(gpt.grads, c.config);
  std::vector<TensorCheck> out;
  const double resolution =
      64 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(loss)) / kStep;
  for (size_t i = 0; i < params.size(); ++i) {
    const GradCheck r = check_gradient(
        params[i].data, grads[i].data, [&] { return gpt.forward(inputs, targets, c.B, c.T); }, kStep);
    out.push_back({params[i].name, params[i].data.size(), r, 0});
  }
  for (auto& t : out) t.limit = kTolerance * t.check.max_numeric + resolution;
  return out;
}

std::string describe(const TensorCheck& t) {
  return fmt::format("GRAD({}, n={}): max err {:.2e}, max |grad| {:.2e}, rel {:.2e}, limit {:.2e}: {}",
                     t.name, t.size, t.check.max_abs_error, t.check.max_numeric, t.check.relative_error(),
                     t.limit, t.ok() ? "OK" : "FAIL");
}

}  // namespace

TEST_CASE("every parameter's analytic gradient matches central differences in double") {
  rc::prop("for a random small config, each tensor is within the stated tolerance", [] {
    const GradCase c = *genGradCase();
    for (const TensorCheck& t : check_every_tensor(c)) {
      RC_LOG() << describe(t) << "\n";
      RC_ASSERT(t.ok());
    }
  });
}

TEST_CASE("gradient check of a fixed config, printed tensor by tensor") {
  GradCase c;
  c.config = Config{.vocab_size = 7,
                    .d_model = 8,
                    .n_layer = 2,
                    .n_head = 2,
                    .d_ff = 12,
                    .rope_theta = 3.0,
                    .ln_eps = 1e-5,
                    .max_seq_len = 8,
                    .train_ctx = 5};
  c.B = 2;
  c.T = 5;
  c.seed = 11;
  double worst = 0;
  const auto checks = check_every_tensor(c);
  for (const TensorCheck& t : checks) {
    INFO(describe(t));
    CHECK(t.check.max_numeric > 0);
    CHECK(t.ok());
    worst = std::max(worst, t.check.relative_error());
  }
  fmt::print(
      "gradient check V=7 D=8 L=2 H=2 F=12 B=2 T=5: {} tensors, worst rel err {:.2e} (limit {:.0e}, "
      "h={:.0e})\n",
      checks.size(), worst, kTolerance, kStep);
}

TEST_CASE("the trainer's float forward computes the engine's logits (same spec, other kernels)") {
  // A convention mismatch (RoPE pairing, LayerNorm eps, GELU form, the tied head) would train
  // happily and ship a model the engine misreads; this ties the two implementations together.
  Config c{.vocab_size = 23,
           .d_model = 32,
           .n_layer = 2,
           .n_head = 4,
           .d_ff = 64,
           .rope_theta = 10000.0,
           .ln_eps = 1e-5,
           .max_seq_len = 32,
           .train_ctx = 20};
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back(fmt::format("w{}", i));
  Model m = init_model(c, vocab, 3);
  Rng rng(4);
  Params<double> p = params_from_weights<double>(m.weights, c);
  randomize(p, c, rng);  // weights of a trained model's size, not init's 0.02
  m.weights = weights_from_params(p, c);
  const std::vector<int> tokens = random_tokens(rng, 20, c.vocab_size);

  Gpt<float> gpt(c, 1, 20);
  gpt.params = params_from_weights<float>(m.weights, c);
  const auto ours = gpt.logits(tokens, 1, 20);
  Engine engine(m);
  const std::vector<float> theirs = engine.forward_uncached(tokens, /*all_rows=*/true);
  REQUIRE(theirs.size() == ours.size());
  double max_diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(ours[i]) - theirs[i]));
    scale = std::max(scale, std::abs(static_cast<double>(theirs[i])));
  }
  fmt::print("trainer vs engine logits: max |diff| {:.2e}, max |logit| {:.2e}\n", max_diff, scale);
  CHECK(max_diff <= 1e-4 * scale);  // float rounding in different orders: ~1e-6 relative
}
