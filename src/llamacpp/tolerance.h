// How far llama.cpp's logits may be from ours for the same model, derived from where it rounds
// to F16 and from the model's weights, before any measurement (conformance_test.cpp checks it).
//
// llama.cpp (CPU, flash attention off) computes the same forward in F32 except at:
//  * GELU: GGML_GELU_FP16 looks the activation up in a 64K table indexed by the F16 of its
//    input and returns the F16 of the tanh-GELU: two F16 roundings per layer;
//  * the F16 KV cache (its default): K and V are stored as F16, and the K.Q product converts Q
//    to F16 as well (ggml-cpu converts src1 to the vec_dot_type of an F16 src0): three more.
// So n_r = 5 F16 roundings per layer with an F16 cache, 2 with an F32 cache, each a relative
// error of at most u = 2^-11 on the rounded vector. First order, and assuming each passes to
// the final normalized hidden state h = LN_f(x) with gain at most 1 (LayerNorm renormalizes;
// the residual stream adds branch outputs), ||dh|| <= n_r * L * u * ||h||. A logit is
// z_v = h . e_v (tied head), so |dz_v| <= ||dh|| * ||e_v||, and since the normalized x has
// norm sqrt(D), ||h|| <= max|w_f| * sqrt(D) + ||b_f||. Hence one absolute bound per model:
//   tol = n_r * L * u * (max|w_f| * sqrt(D) + ||b_f||) * max_v ||e_v||.
// F32 matmul reassociation (llama.cpp's SIMD sums, FMA) is ~1e-7 relative: negligible here.
// A Q8_0 or Q4_0 cache (which needs flash attention) rounds K and V per block of 32 floats to
// steps of d = amax/127 (Q8_0) or amax/8 (Q4_0, levels -8..7) with d stored as F16, and the flash
// kernel rounds Q to Q8_0 (the K type's vec_dot_type) for the K.Q product; V is dequantized and
// summed in F32. Per block, |e_i| <= d/2 (one element of a Q4_0 block, clamped at +8, up to d),
// so in norm ||e|| <= sqrt(32) (1/254 + 2^-11) ||x|| for Q8_0 and (sqrt(1/64 + 31/256) +
// sqrt(32) 2^-11) ||x|| for Q4_0 (the F16 scale's own rounding added). With 5 roundings per layer
// (GELU's two, Q, K, V) each bounded by the coarser unit: tol = 5 L u_q ||h|| bound max ||e_v||.
// The Q4_0 bound is coarse (u_q ~ 0.4): it tells a wrong model from the right one, no more.
// A typical error is far below the bound: roundings add in quadrature, not linearly, and a
// random dh projects on e_v with ||e_v|| / sqrt(D), not ||e_v||.
//
// Within llama.cpp (cached path against its own recompute, a batch against one sequence
// alone) the F16 roundings are the same ones; what differs is the order of F32 sums, since
// the batch shape picks the kernel and its blocking. The standard bound for an n-term F32 dot
// product is gamma_n ~ n * 2^-24 of sum |a b|; with n the longest sum (max of D, F and the
// context) and 8 matmuls per layer (q, k, v, o, fc_in, fc_out, K.Q, P.V) plus the head, the
// same propagation gives self_tol = (8 L + 1) * n * 2^-24 * ||h|| bound * max ||e_v||. A
// reassociation can flip an F16 rounding, but a flip moves an element by an F16 ulp only with
// probability ~ (perturbation / ulp), so on average it adds no more than the perturbation.
#pragma once
#include "llamacpp/llamacpp_engine.h"
#include "model/model.h"

namespace miniinfer {

struct LogitTolerance {
  int roundings_per_layer = 0;  // n_r
  double unit_roundoff = 0.0;   // u = 2^-11
  int extra_roundings = 0;      // outside the layers (the head, for self_tolerance)
  double h_norm_bound = 0.0;    // max|w_f| * sqrt(D) + ||b_f||
  double max_emb_norm = 0.0;    // max_v ||e_v||
  double tol = 0.0;             // the bound on |dz| for every logit:
                                // (n_r * L + extra) * u * h_norm_bound * max_emb_norm
};

LogitTolerance logit_tolerance(const Model& model, KvType kv_type);
// Between two llama.cpp computations of the same tokens (contexts up to max_context).
// roundings_per_layer is then the matmul count, unit_roundoff n * 2^-24.
LogitTolerance self_tolerance(const Model& model, int max_context);

}  // namespace miniinfer
