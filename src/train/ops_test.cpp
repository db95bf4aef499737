// Each op's backward against central differences of its own forward, for every input it
// differentiates, so a failure names the op rather than the whole model. The loss is a
// random linear function of the op's output, L = sum_i r_i out_i, so dout = r.
// Tolerance as in gpt_test.cpp: max |analytic - numeric| <= 1e-6 * max |numeric| with the
// five-point difference at h = 1e-5 (gradients here are O(1), far above its noise floor).
#include "train/ops.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "base/rng.h"
#include "train/gradcheck.h"

using namespace miniinfer;
using namespace miniinfer::train;

namespace {

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;
using Vec = std::vector<double>;

Vec random_vec(Rng& rng, size_t n, double offset = 0.0) {
  Vec v(n);
  for (double& x : v) x = offset + rng.normal();
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks one input of one op and prints the line ggml-style.
void expect_gradient(const std::string& op, const std::string& input, Vec& x, const Vec& analytic,
                     const std::function<double()>& loss) {
  const GradCheck r = check_gradient(x, analytic, loss, kStep);
  const bool ok = r.max_numeric > 0 && r.max_abs_error <= kTolerance * r.max_numeric;
  const std::string line =
      fmt::format("{}(d{}, n={}): rel err {:.2e} (max |grad| {:.2e}, limit {:.0e}): {}", op, input, x.size(),
                  r.relative_error(), r.max_numeric, kTolerance, ok ? "OK" : "FAIL");
  fmt::print("{}\n", line);
  INFO(line);
  CHECK(ok);
}

}  // namespace

TEST_CASE("encoder_backward is the gradient of encoder_forward") {
  Rng rng(1);
  const int B = 2, T = 3, C = 4, V = 5;
  const std::vector<int> tokens = {0, 3, 3, 1, 4, 0};
  Vec wte = random_vec(rng, V * C), r = random_vec(rng, B * T * C), out(B * T * C), dwte(V * C);
  auto loss = [&] {
    encoder_forward(out.data(), tokens.data(), wte.data(), B, T, C);
    return dot(out, r);
  };
  encoder_backward(dwte.data(), r.data(), tokens.data(), B, T, C);
  expect_gradient("ENCODER", "wte", wte, dwte, loss);
}

TEST_CASE("layernorm_backward is the gradient of layernorm_forward") {
  Rng rng(2);
  const int B = 2, T = 3, C = 6;
  Vec x = random_vec(rng, B * T * C, 0.5), w = random_vec(rng, C, 1.0), b = random_vec(rng, C);
  Vec r = random_vec(rng, B * T * C), out(B * T * C), mean(B * T), rstd(B * T);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), B, T, C, 1e-5);
    return dot(out, r);
  };
  loss();
  Vec dx(x.size()), dw(C), db(C);
  layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), mean.data(), rstd.data(),
                     B, T, C);
  expect_gradient("LAYERNORM", "inp", x, dx, loss);
  expect_gradient("LAYERNORM", "weight", w, dw, loss);
  expect_gradient("LAYERNORM", "bias", b, db, loss);
}

TEST_CASE("matmul_backward is the gradient of matmul_forward") {
  Rng rng(3);
  const int B = 2, T = 3, C = 5, OC = 7;
  Vec x = random_vec(rng, B * T * C), w = random_vec(rng, OC * C), b = random_vec(rng, OC);
  Vec r = random_vec(rng, B * T * OC), out(B * T * OC);
  auto loss = [&] {
    matmul_forward(out.data(), x.data(), w.data(), b.data(), B, T, C, OC);
    return dot(out, r);
  };
  Vec dx(x.size()), dw(w.size()), db(b.size());
  matmul_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), B, T, C, OC);
  expect_gradient("MATMUL", "inp", x, dx, loss);
  expect_gradient("MATMUL", "weight", w, dw, loss);
  expect_gradient("MATMUL", "bias", b, db, loss);
}

TEST_CASE("rope_backward is the gradient of rope_forward") {
  Rng rng(4);
  const int B = 2, T = 5, C = 8, NH = 2;
  const RopeTable<double> rope = make_rope_table<double>(T, C / NH, 3.0);
  Vec x = random_vec(rng, B * T * C), r = random_vec(rng, B * T * C), out(B * T * C), dx(B * T * C);
  auto loss = [&] {
    rope_forward(out.data(), x.data(), rope.cos.data(), rope.sin.data(), B, T, C, NH);
    return dot(out, r);
  };
  rope_backward(dx.data(), r.data(), rope.cos.data(), rope.sin.data(), B, T, C, NH);
  expect_gradient("ROPE", "inp", x, dx, loss);
}

TEST_CASE("attention_backward is the gradient of attention_forward") {
  Rng rng(5);
  const int B = 2, T = 4, C = 6, NH = 3;
  Vec q = random_vec(rng, B * T * C), k = random_vec(rng, B * T * C), v = random_vec(rng, B * T * C);
  Vec r = random_vec(rng, B * T * C), out(B * T * C), att(B * NH * T * T);
  auto loss = [&] {
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, C, NH);
    return dot(out, r);
  };
  loss();
  Vec dq(q.size()), dk(k.size()), dv(v.size());
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), att.data(), B,
                     T, C, NH);
  expect_gradient("ATTENTION", "q", q, dq, loss);
  expect_gradient("ATTENTION", "k", k, dk, loss);
  expect_gradient("ATTENTION", "v", v, dv, loss);
}

TEST_CASE("attention is causal: a row's output ignores later positions") {
  Rng rng(6);
  const int B = 1, T = 4, C = 4, NH = 2;
  Vec q = random_vec(rng, T * C), k = random_vec(rng, T * C), v = random_vec(rng, T * C);
  Vec out1(T * C), out2(T * C), att(NH * T * T);
  attention_forward(out1.data(), att.data(), q.data(), k.data(), v.data(), B, T, C, NH);
  for (int i = 0; i < C; ++i) k[3 * C + i] += 1.0, v[3 * C + i] -= 2.0;  // change only position 3
  attention_forward(out2.data(), att.data(), q.data(), k.data(), v.data(), B, T, C, NH);
  for (int i = 0; i < 3 * C; ++i) CHECK(out1[i] == out2[i]);
}

TEST_CASE("gelu_backward is the gradient of gelu_forward") {
  Rng rng(7);
  const size_t N = 40;
  Vec x = random_vec(rng, N), r = random_vec(rng, N), out(N), dx(N);
  for (double& xi : x) xi *= 2;  // reach the tails, where tanh saturates
  auto loss = [&] {
    gelu_forward(out.data(), x.data(), N);
    return dot(out, r);
  };
  gelu_backward(dx.data(), x.data(), r.data(), N);
  expect_gradient("GELU", "inp", x, dx, loss);
}

TEST_CASE("gelu_forward is the tanh approximation at known points") {
  // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))), evaluated independently (Python math.tanh).
  const Vec x = {-3.0, -1.0, 0.0, 0.5, 2.0};
  const Vec expected = {-0.0036373920817729943, -0.15880800939172324, 0.0, 0.34571400982514394,
                        1.954597694087775};
  Vec out(x.size());
  gelu_forward(out.data(), x.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) CHECK(out[i] == Approx(expected[i]).epsilon(1e-14));
}

TEST_CASE("residual_backward is the gradient of residual_forward") {
  Rng rng(8);
  const size_t N = 12;
  Vec a = random_vec(rng, N), b = random_vec(rng, N), r = random_vec(rng, N), out(N), da(N), db(N);
  auto loss = [&] {
    residual_forward(out.data(), a.data(), b.data(), N);
    return dot(out, r);
  };
  residual_backward(da.data(), db.data(), r.data(), N);
  expect_gradient("RESIDUAL", "inp1", a, da, loss);
  expect_gradient("RESIDUAL", "inp2", b, db, loss);
}

TEST_CASE("crossentropy_softmax_backward is the gradient of softmax_crossentropy_forward") {
  Rng rng(9);
  const int B = 2, T = 3, V = 6;
  const std::vector<int> targets = {0, 5, 2, 2, 1, 4};
  Vec z = random_vec(rng, B * T * V), r = random_vec(rng, B * T), probs(z.size()), losses(B * T),
      dz(z.size());
  auto loss = [&] {
    softmax_crossentropy_forward(probs.data(), losses.data(), z.data(), targets.data(), B, T, V);
    return dot(losses, r);
  };
  loss();
  crossentropy_softmax_backward(dz.data(), r.data(), probs.data(), targets.data(), B, T, V);
  expect_gradient("CROSSENTROPY", "logits", z, dz, loss);
}

TEST_CASE("rope table follows the spec: angle pos * theta^(-2i/d_head), cos/sin rounded to float") {
  const RopeTable<float> t = make_rope_table<float>(3, 4, 10000.0);
  CHECK(t.cos[0] == 1.0f);
  CHECK(t.sin[0] == 0.0f);
  CHECK(t.cos[2 * 2 + 0] == static_cast<float>(std::cos(2.0)));
  CHECK(t.sin[2 * 2 + 1] == static_cast<float>(std::sin(2.0 * 0.01)));
}
