// The derivation is in tolerance.h.
#include "llamacpp/tolerance.h"

#include <algorithm>
#include <cmath>

namespace miniinfer {

LogitTolerance logit_tolerance(const Model& model, KvType kv_type) {
  const Config& c = model.config;
  LogitTolerance t;
  t.roundings_per_layer = kv_type == KvType::F16 ? 5 : 2;
  t.unit_roundoff = std::ldexp(1.0, -11);
  double max_w = 0.0, b2 = 0.0;
  for (float w : model.weights.lnf_w) max_w = std::max(max_w, std::fabs(static_cast<double>(w)));
  for (float b : model.weights.lnf_b) b2 += static_cast<double>(b) * b;
  t.h_norm_bound = max_w * std::sqrt(static_cast<double>(c.d_model)) + std::sqrt(b2);
  for (int v = 0; v < c.vocab_size; ++v) {
    double e2 = 0.0;
    for (int i = 0; i < c.d_model; ++i) {
      const double e = model.weights.tok_emb[static_cast<size_t>(v) * c.d_model + i];
      e2 += e * e;
    }
    t.max_emb_norm = std::max(t.max_emb_norm, std::sqrt(e2));
  }
  t.tol = t.roundings_per_layer * c.n_layer * t.unit_roundoff * t.h_norm_bound * t.max_emb_norm;
  return t;
}

}  // namespace miniinfer
