#include "model/model.h"

#include <cmath>

#include "base/error.h"
#include "base/rng.h"

namespace miniinfer {

void Config::validate() const {
  auto positive = [](const char* name, long long v) {
    if (v <= 0) fail("config: {} must be positive, got {}", name, v);
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layer", n_layer);
  positive("n_head", n_head);
  positive("d_ff", d_ff);
  positive("max_seq_len", max_seq_len);
  positive("train_ctx", train_ctx);
  auto at_most = [](const char* name, long long v, long long limit) {
    if (v > limit) fail("config: {} = {} exceeds the limit {}", name, v, limit);
  };
  at_most("vocab_size", vocab_size, kMaxVocab);
  at_most("d_model", d_model, kMaxWidth);
  at_most("d_ff", d_ff, kMaxWidth);
  at_most("n_layer", n_layer, kMaxLayers);
  at_most("max_seq_len", max_seq_len, kMaxSeqLen);
  at_most("train_ctx", train_ctx, kMaxSeqLen);
  if (d_model % n_head != 0) fail("config: d_model {} is not a multiple of n_head {}", d_model, n_head);
  if (d_head() % 2 != 0) fail("config: d_head = d_model / n_head = {} must be even (RoPE)", d_head());
  if (!(rope_theta > 1.0) || !std::isfinite(rope_theta)) fail("config: rope_theta must be > 1, got {}", rope_theta);
  if (!(ln_eps > 0.0) || !std::isfinite(ln_eps)) fail("config: ln_eps must be > 0, got {}", ln_eps);
}

void check_weights(const Weights& weights, const Config& c) {
  if (weights.layers.size() != static_cast<size_t>(c.n_layer))
    fail("weights: {} layers, but the config has n_layer = {}", weights.layers.size(), c.n_layer);
  for_each_tensor(weights, c, [](const std::string& name, const std::vector<int64_t>& shape,
                                 const std::vector<float>& t) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (static_cast<int64_t>(t.size()) != n)
      fail("tensor {}: {} values, but its shape needs {}", name, t.size(), n);
    for (size_t i = 0; i < t.size(); ++i)
      if (!std::isfinite(t[i])) fail("tensor {}: value {} is {}", name, i, t[i]);
  });
}

Weights make_weights(const Config& c) {
  Weights w;
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for_each_tensor(w, c, [](const std::string&, const std::vector<int64_t>& shape, std::vector<float>& t) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    t.assign(static_cast<size_t>(n), 0.0f);
  });
  return w;
}

Config gpt2_small_config() {
  Config c;
  c.vocab_size = 50257;
  c.d_model = 768;
  c.n_layer = 12;
  c.n_head = 12;
  c.d_ff = 3072;
  c.max_seq_len = 1024;
  c.train_ctx = 1024;
  return c;
}

Model init_model(const Config& config, std::vector<std::string> vocab, uint64_t seed) {
  config.validate();
  if (static_cast<int>(vocab.size()) != config.vocab_size)
    fail("init: vocab has {} words but config.vocab_size is {}", vocab.size(), config.vocab_size);
  Model m{config, make_weights(config), std::move(vocab)};
  Rng rng(seed);
  const float residual_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(config.n_layer));
  for_each_tensor(m.weights, config, [&](const std::string& name, const std::vector<int64_t>& shape,
                                          std::vector<float>& t) {
    const bool is_ln_weight = name.find("ln") != std::string::npos && name.ends_with(".weight");
    if (is_ln_weight) {
      t.assign(t.size(), 1.0f);
    } else if (shape.size() == 2) {
      const bool residual = name.find("o_proj") != std::string::npos || name.find("fc_out") != std::string::npos;
      const float scale = 0.02f * (residual ? residual_scale : 1.0f);
      for (float& x : t) x = scale * rng.normal();
    }
  });
  return m;
}

}  // namespace miniinfer
