// Helpers shared by the engine's tests: random models in several shapes (with random biases
// and LayerNorm parameters, so every term of the forward is exercised), random tokens, and
// byte comparison that names the first differing element.
#pragma once
#include <cmath>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/rng.h"
#include "model/model.h"

namespace miniinfer::testing {

inline std::vector<std::string> made_up_vocab(int n) {
  std::vector<std::string> vocab;
  for (int i = 0; i < n; ++i) vocab.push_back("w" + std::to_string(i));
  return vocab;
}

inline Config make_config(int V, int D, int L, int H, int F, int max_seq_len = 64) {
  Config c;
  c.vocab_size = V;
  c.d_model = D;
  c.n_layer = L;
  c.n_head = H;
  c.d_ff = F;
  c.max_seq_len = max_seq_len;
  return c;
}

// Shapes covering L 1-4, H 1-8, d_head 2-64, odd F and V (column tails in every matmul).
inline std::vector<Config> test_configs() {
  return {
      make_config(37, 8, 1, 4, 13),     // d_head 2
      make_config(50, 24, 2, 3, 40),    // d_head 8, H 3
      make_config(101, 64, 3, 8, 256),  // d_head 8, H 8
      make_config(90, 64, 4, 1, 100),   // d_head 64, H 1
      make_config(65, 48, 2, 2, 17),    // d_head 24
      make_config(129, 64, 4, 4, 256),  // the shipped shape, small vocab
  };
}

inline std::string describe(const Config& c) {
  return fmt::format("V={} D={} L={} H={} d_head={} F={}", c.vocab_size, c.d_model, c.n_layer, c.n_head,
                     c.d_head(), c.d_ff);
}

// init_model, then matrices rescaled to N(0, 1/C)-ish and random biases and LayerNorm
// parameters, so attention is far from uniform and the logits far from flat.
inline Model random_model(const Config& c, uint64_t seed) {
  Model m = init_model(c, made_up_vocab(c.vocab_size), seed);
  Rng rng(seed ^ 0x5eed);
  for_each_tensor(m.weights, c, [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& t) {
    if (shape.size() == 2) {
      const float s = 1.0f / std::sqrt(static_cast<float>(shape[1]));
      for (float& x : t) x = s * rng.normal();
    } else if (name.ends_with(".weight")) {
      for (float& x : t) x = 1.0f + 0.2f * rng.normal();
    } else {
      for (float& x : t) x = 0.1f * rng.normal();
    }
  });
  return m;
}

inline std::vector<int> random_tokens(Rng& rng, int n, int V) {
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(static_cast<uint32_t>(V)));
  return t;
}

// Index of the first element whose bytes differ, or nullopt if a and b are byte-identical.
inline std::optional<size_t> first_byte_difference(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return std::min(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
  return std::nullopt;
}

inline bool same_bytes(std::span<const float> a, std::span<const float> b) { return !first_byte_difference(a, b); }

}  // namespace miniinfer::testing
