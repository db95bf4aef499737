// The derivation is in tolerance.h.
#include "llamacpp/tolerance.h"

#include <algorithm>
#include <cmath>

namespace miniinfer {

namespace {

LogitTolerance bound(const Model& model, int per_layer, int extra, double unit) {
  const Config& c = model.config;
  LogitTolerance t;
  t.roundings_per_layer = per_layer;
  t.extra_roundings = extra;
  t.unit_roundoff = unit;
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
  t.tol = (per_layer * c.n_layer + extra) * unit * t.h_norm_bound * t.max_emb_norm;
  return t;
}

}  // namespace

LogitTolerance logit_tolerance(const Model& model, KvType kv_type) {
  const double f16 = std::ldexp(1.0, -11), scale = std::sqrt(32.0) * f16;
  switch (kv_type) {
    case KvType::F32: return bound(model, 2, 0, f16);
    case KvType::F16: return bound(model, 5, 0, f16);
    case KvType::Q8_0: return bound(model, 5, 0, std::sqrt(32.0) / 254.0 + scale);
    case KvType::Q4_0: return bound(model, 5, 0, std::sqrt(1.0 / 64 + 31.0 / 256) + scale);
  }
  return bound(model, 5, 0, f16);
}

LogitTolerance self_tolerance(const Model& model, int max_context) {
  const int n = std::max({model.config.d_model, model.config.d_ff, max_context});
  return bound(model, 8, 1, n * std::ldexp(1.0, -24));
}

}  // namespace miniinfer
