// The forward and backward pass of every MiniGPT op, one function per op and direction, in
// llm.c's convention: outputs first, then inputs, then sizes (B batch, T time, C channels).
// Forward keeps what backward needs; backward accumulates (+=) into its outputs, so callers
// zero them. Templated on the scalar: float to train, double for gradient checks.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "engine/kernels.h"

namespace miniinfer::train {

// exp over an array: for float, the engine's own exp (pure + - * /, eight lanes, the same bits
// on every machine and libm); for double, std::exp (the gradient checks' reference).
template <typename Real>
void exp_array(Real* out, const Real* inp, int n) {
  if constexpr (std::is_same_v<Real, float>) {
    kernels::exp_forward(out, inp, n);
  } else {
    for (int i = 0; i < n; ++i) out[i] = std::exp(inp[i]);
  }
}

template <typename Real>
using RowMatrix = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename Real>
using MatrixView = Eigen::Map<RowMatrix<Real>>;
template <typename Real>
using ConstMatrixView = Eigen::Map<const RowMatrix<Real>>;

// ---- token embedding ---------------------------------------------------------------------

template <typename Real>
void encoder_forward(Real* out, const int* inp, const Real* wte, int B, int T, int C) {
  for (int bt = 0; bt < B * T; ++bt)
    std::copy_n(wte + static_cast<size_t>(inp[bt]) * C, C, out + static_cast<size_t>(bt) * C);
}

// Forward: out[b,t,:] = wte[inp[b,t],:]; so each row's gradient lands on its token's row.
template <typename Real>
void encoder_backward(Real* dwte, const Real* dout, const int* inp, int B, int T, int C) {
  for (int bt = 0; bt < B * T; ++bt) {
    Real* row = dwte + static_cast<size_t>(inp[bt]) * C;
    const Real* d = dout + static_cast<size_t>(bt) * C;
    for (int i = 0; i < C; ++i) row[i] += d[i];
  }
}

// ---- LayerNorm (PyTorch semantics: biased variance over C) --------------------------------

template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                       const Real* bias, int B, int T, int C, double eps) {
  for (int bt = 0; bt < B * T; ++bt) {
    const Real* x = inp + static_cast<size_t>(bt) * C;
    Real* y = out + static_cast<size_t>(bt) * C;
    Real m = 0;
    for (int i = 0; i < C; ++i) m += x[i];
    m /= static_cast<Real>(C);
    Real var = 0;  // two passes: a sum of squares minus a square loses digits
    for (int i = 0; i < C; ++i) var += (x[i] - m) * (x[i] - m);
    var /= static_cast<Real>(C);
    const Real s = Real(1) / std::sqrt(var + static_cast<Real>(eps));
    for (int i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[bt] = m;
    rstd[bt] = s;
  }
}

// Forward: n = (x - mean) * rstd, out = n * weight + bias, mean and rstd over the row.
// With dn = dout * weight: dx = rstd * (dn - mean(dn) - n * mean(dn * n)).
template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int B, int T, int C) {
  for (int bt = 0; bt < B * T; ++bt) {
    const size_t row = static_cast<size_t>(bt) * C;
    const Real* x = inp + row;
    const Real* dy = dout + row;
    Real* dx = dinp + row;
    Real dn_mean = 0, dn_n_mean = 0;
    for (int i = 0; i < C; ++i) {
      const Real n = (x[i] - mean[bt]) * rstd[bt];
      const Real dn = dy[i] * weight[i];
      dn_mean += dn;
      dn_n_mean += dn * n;
    }
    dn_mean /= static_cast<Real>(C);
    dn_n_mean /= static_cast<Real>(C);
    for (int i = 0; i < C; ++i) {
      const Real n = (x[i] - mean[bt]) * rstd[bt];
      const Real dn = dy[i] * weight[i];
      dbias[i] += dy[i];
      dweight[i] += n * dy[i];
      dx[i] += rstd[bt] * (dn - dn_mean - n * dn_n_mean);
    }
  }
}

// ---- linear layers (PyTorch nn.Linear layout: weight is (OC, C)) --------------------------

// out (B*T, OC) = inp (B*T, C) · weight^T + bias; bias may be null (the tied output head).
template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int B, int T, int C,
                    int OC) {
  MatrixView<Real> y(out, B * T, OC);
  ConstMatrixView<Real> x(inp, B * T, C);
  ConstMatrixView<Real> w(weight, OC, C);
  y.noalias() = x * w.transpose();
  if (bias) y.rowwise() += Eigen::Map<const Eigen::Matrix<Real, 1, Eigen::Dynamic>>(bias, OC);
}

// Forward: out = inp · weight^T + bias. So dinp += dout · weight, dweight += dout^T · inp,
// dbias += the column sums of dout. dbias may be null when the forward had no bias.
template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                     const Real* weight, int B, int T, int C, int OC) {
  ConstMatrixView<Real> dy(dout, B * T, OC);
  ConstMatrixView<Real> x(inp, B * T, C);
  ConstMatrixView<Real> w(weight, OC, C);
  MatrixView<Real>(dinp, B * T, C).noalias() += dy * w;
  MatrixView<Real>(dweight, OC, C).noalias() += dy.transpose() * x;
  // Not Eigen's colwise().sum(): its vectorized reduction peels for alignment, so its order,
  // and the bits, would depend on where the buffer happens to sit. Rows in order instead.
  if (dbias) {
    for (int bt = 0; bt < B * T; ++bt) {
      const Real* row = dout + static_cast<size_t>(bt) * OC;
      for (int o = 0; o < OC; ++o) dbias[o] += row[o];
    }
  }
}

// ---- RoPE, rotate-half convention ---------------------------------------------------------

// cos and sin of pos * theta^(-2i/d_head) for pos < T, i < d_head/2, as the spec computes
// them: in double, rounded to float once. Layout (T, d_head/2).
template <typename Real>
struct RopeTable {
  std::vector<Real> cos, sin;
};

template <typename Real>
RopeTable<Real> make_rope_table(int T, int d_head, double theta) {
  const int half = d_head / 2;
  RopeTable<Real> table;
  table.cos.resize(static_cast<size_t>(T) * half);
  table.sin.resize(static_cast<size_t>(T) * half);
  for (int pos = 0; pos < T; ++pos) {
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(theta, -2.0 * i / d_head);
      const double angle = pos * inv_freq;
      table.cos[static_cast<size_t>(pos) * half + i] = static_cast<Real>(static_cast<float>(std::cos(angle)));
      table.sin[static_cast<size_t>(pos) * half + i] = static_cast<Real>(static_cast<float>(std::sin(angle)));
    }
  }
  return table;
}

// Rotates each head's pairs (i, i + half) by the angle of the row's position t.
template <typename Real>
void rope_forward(Real* out, const Real* inp, const Real* cos, const Real* sin, int B, int T, int C, int NH) {
  const int hs = C / NH, half = hs / 2;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const Real* c = cos + static_cast<size_t>(t) * half;
      const Real* s = sin + static_cast<size_t>(t) * half;
      for (int h = 0; h < NH; ++h) {
        const size_t base = (static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * hs;
        const Real* x = inp + base;
        Real* y = out + base;
        for (int i = 0; i < half; ++i) {
          const Real x1 = x[i], x2 = x[i + half];
          y[i] = x1 * c[i] - x2 * s[i];
          y[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }
}

// Forward: y1 = x1*c - x2*s, y2 = x2*c + x1*s, a rotation; its transpose rotates back:
// dx1 = dy1*c + dy2*s, dx2 = dy2*c - dy1*s.
template <typename Real>
void rope_backward(Real* dinp, const Real* dout, const Real* cos, const Real* sin, int B, int T, int C,
                   int NH) {
  const int hs = C / NH, half = hs / 2;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const Real* c = cos + static_cast<size_t>(t) * half;
      const Real* s = sin + static_cast<size_t>(t) * half;
      for (int h = 0; h < NH; ++h) {
        const size_t base = (static_cast<size_t>(b) * T + t) * C + static_cast<size_t>(h) * hs;
        const Real* dy = dout + base;
        Real* dx = dinp + base;
        for (int i = 0; i < half; ++i) {
          dx[i] += dy[i] * c[i] + dy[i + half] * s[i];
          dx[i + half] += dy[i + half] * c[i] - dy[i] * s[i];
        }
      }
    }
  }
}

// ---- causal self-attention ------------------------------------------------------------------

// Head h of a (B, T, C) tensor as a (T, hs) matrix with row stride C.
template <typename Real>
using HeadView = Eigen::Map<RowMatrix<Real>, 0, Eigen::OuterStride<>>;
template <typename Real>
using ConstHeadView = Eigen::Map<const RowMatrix<Real>, 0, Eigen::OuterStride<>>;

template <typename Real>
ConstHeadView<Real> head_of(const Real* x, int b, int h, int T, int C, int hs) {
  return ConstHeadView<Real>(x + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * hs, T, hs,
                             Eigen::OuterStride<>(C));
}
template <typename Real>
HeadView<Real> head_of(Real* x, int b, int h, int T, int C, int hs) {
  return HeadView<Real>(x + static_cast<size_t>(b) * T * C + static_cast<size_t>(h) * hs, T, hs,
                        Eigen::OuterStride<>(C));
}

// q, k, v: (B, T, C), head h in channels [h*hs, (h+1)*hs). att: (B, NH, T, T) keeps the
// softmax probabilities for backward (zero above the diagonal). out: (B, T, C).
// Per (b, h): S = Q K^T * scale, P = causal softmax of S by rows, O = P V.
template <typename Real>
void attention_forward(Real* out, Real* att, const Real* q, const Real* k, const Real* v, int B, int T, int C,
                       int NH) {
  const int hs = C / NH;
  const Real scale = Real(1) / std::sqrt(static_cast<Real>(hs));
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      MatrixView<Real> p(att + (static_cast<size_t>(b) * NH + h) * T * T, T, T);
      p.noalias() = head_of(q, b, h, T, C, hs) * head_of(k, b, h, T, C, hs).transpose();
      for (int t = 0; t < T; ++t) {
        Real* row = p.row(t).data();
        Real maxval = row[0] * scale;
        for (int t2 = 0; t2 <= t; ++t2) {
          row[t2] *= scale;
          maxval = std::max(maxval, row[t2]);
        }
        for (int t2 = 0; t2 <= t; ++t2) row[t2] -= maxval;
        exp_array(row, row, t + 1);
        Real sum = 0;
        for (int t2 = 0; t2 <= t; ++t2) sum += row[t2];
        for (int t2 = 0; t2 <= t; ++t2) row[t2] /= sum;
        for (int t2 = t + 1; t2 < T; ++t2) row[t2] = 0;
      }
      head_of(out, b, h, T, C, hs).noalias() = p * head_of(v, b, h, T, C, hs);
    }
  }
}

// Forward, per (b, h): S = Q K^T * scale, P = causal row softmax of S, O = P V.
// So dV += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)) (elementwise; 0 above the
// diagonal since P is), dQ += dS K * scale, dK += dS^T Q * scale.
template <typename Real>
void attention_backward(Real* dq, Real* dk, Real* dv, const Real* dout, const Real* q, const Real* k,
                        const Real* v, const Real* att, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const Real scale = Real(1) / std::sqrt(static_cast<Real>(hs));
  RowMatrix<Real> ds(T, T);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      ConstMatrixView<Real> p(att + (static_cast<size_t>(b) * NH + h) * T * T, T, T);
      const auto dO = head_of(dout, b, h, T, C, hs);
      head_of(dv, b, h, T, C, hs).noalias() += p.transpose() * dO;
      ds.noalias() = dO * head_of(v, b, h, T, C, hs).transpose();
      for (int t = 0; t < T; ++t) {
        Real p_dp = 0;
        for (int t2 = 0; t2 <= t; ++t2) p_dp += p(t, t2) * ds(t, t2);
        for (int t2 = 0; t2 <= t; ++t2) ds(t, t2) = p(t, t2) * (ds(t, t2) - p_dp) * scale;
        for (int t2 = t + 1; t2 < T; ++t2) ds(t, t2) = 0;
      }
      head_of(dq, b, h, T, C, hs).noalias() += ds * head_of(k, b, h, T, C, hs);
      head_of(dk, b, h, T, C, hs).noalias() += ds.transpose() * head_of(q, b, h, T, C, hs);
    }
  }
}

// ---- GELU, tanh approximation -------------------------------------------------------------

template <typename Real>
constexpr Real kGeluScale = static_cast<Real>(0.79788456080286535588);  // sqrt(2/pi)

// t = -2u, u = sqrt(2/pi) (x + 0.044715 x^3), capped at 80 so exp(t) stays finite (where the
// cap bites, x / (1 + e^t) is below 1e-33 |x| either way).
template <typename Real>
Real gelu_minus_2u(Real x) {
  const Real u = kGeluScale<Real> * (x + Real(0.044715) * x * x * x);
  return std::min(Real(-2) * u, Real(80));
}

// 0.5x(1 + tanh u) evaluated as the identical x / (1 + exp(-2u)), as the engine does: one exp,
// and full relative accuracy where 1 + tanh u would cancel.
template <typename Real>
void gelu_forward(Real* out, const Real* inp, size_t N) {
  constexpr size_t kChunk = 256;
  Real e[kChunk];
  for (size_t i0 = 0; i0 < N; i0 += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, N - i0));
    for (int i = 0; i < n; ++i) e[i] = gelu_minus_2u(inp[i0 + i]);
    exp_array(e, e, n);
    for (int i = 0; i < n; ++i) out[i0 + i] = inp[i0 + i] / (Real(1) + e[i]);
  }
}

// Forward: out = x s with s = 1 / (1 + e), e = exp(-2u), u = a (x + 0.044715 x^3).
// ds/dx = 2 s (1 - s) du/dx and 1 - s = e s, so dx = dout * (s + 2 x s (e s) a (1 + 3 * 0.044715 x^2)).
template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t N) {
  constexpr size_t kChunk = 256;
  Real e[kChunk];
  for (size_t i0 = 0; i0 < N; i0 += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, N - i0));
    for (int i = 0; i < n; ++i) e[i] = gelu_minus_2u(inp[i0 + i]);
    exp_array(e, e, n);
    for (int i = 0; i < n; ++i) {
      const Real x = inp[i0 + i];
      const Real s = Real(1) / (Real(1) + e[i]);
      const Real du = kGeluScale<Real> * (Real(1) + Real(3 * 0.044715) * x * x);
      dinp[i0 + i] += dout[i0 + i] * (s + Real(2) * x * s * (e[i] * s) * du);
    }
  }
}

// ---- residual connections -------------------------------------------------------------------

template <typename Real>
void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t N) {
  for (size_t i = 0; i < N; ++i) out[i] = inp1[i] + inp2[i];
}

// Forward: out = inp1 + inp2; the gradient passes to both unchanged.
template <typename Real>
void residual_backward(Real* dinp1, Real* dinp2, const Real* dout, size_t N) {
  for (size_t i = 0; i < N; ++i) {
    dinp1[i] += dout[i];
    dinp2[i] += dout[i];
  }
}

// ---- softmax and cross-entropy --------------------------------------------------------------

// probs (B, T, V) = softmax of each row of logits; losses (B, T) = -log probs[target], taken
// as logsumexp - logit so a tiny probability cannot round to log(0).
template <typename Real>
void softmax_crossentropy_forward(Real* probs, Real* losses, const Real* logits, const int* targets, int B,
                                  int T, int V) {
  for (int bt = 0; bt < B * T; ++bt) {
    const Real* z = logits + static_cast<size_t>(bt) * V;
    Real* p = probs + static_cast<size_t>(bt) * V;
    Real maxval = z[0];
    for (int i = 1; i < V; ++i) maxval = std::max(maxval, z[i]);
    for (int i = 0; i < V; ++i) p[i] = z[i] - maxval;
    exp_array(p, p, V);
    Real sum = 0;
    for (int i = 0; i < V; ++i) sum += p[i];
    for (int i = 0; i < V; ++i) p[i] /= sum;
    losses[bt] = std::log(sum) - (z[targets[bt]] - maxval);
  }
}

// Forward: p = softmax(z), loss = -log p[target]. So dz_i += dloss * (p_i - [i == target]).
template <typename Real>
void crossentropy_softmax_backward(Real* dlogits, const Real* dlosses, const Real* probs, const int* targets,
                                   int B, int T, int V) {
  for (int bt = 0; bt < B * T; ++bt) {
    Real* dz = dlogits + static_cast<size_t>(bt) * V;
    const Real* p = probs + static_cast<size_t>(bt) * V;
    for (int i = 0; i < V; ++i) dz[i] += dlosses[bt] * (p[i] - (i == targets[bt] ? Real(1) : Real(0)));
  }
}

}  // namespace miniinfer::train
