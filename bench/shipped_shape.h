// The random models the speed programs time when no model file is given. The shipped shape: V=900, D=64, L=4, H=4, F=256, max_seq_len 512; GPT-2 small's:
// V=50257, D=768, L=12, H=12, F=3072, context 1024. Weights from init_model's seed 1 and a
// fixed vocabulary of placeholder words, so figures stay comparable across corpus changes (the
// shipped model's V moves with corpus/*.tsv).
#pragma once
#include <string>
#include <vector>

#include "base/rng.h"
#include "model/model.h"

namespace miniinfer {

inline Model random_model(const Config& c) {
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
  return init_model(c, vocab, 1);
}

inline Model shipped_shape_model() {
  Config c;
  c.vocab_size = 900;
  c.d_model = 64;
  c.n_layer = 4;
  c.n_head = 4;
  c.d_ff = 256;
  c.max_seq_len = 512;
  return random_model(c);
}

inline Model gpt2_small_shape_model() { return random_model(gpt2_small_config()); }

// n token ids below `vocab`, from Rng(seed).
inline std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = static_cast<int>(rng.below(static_cast<uint32_t>(vocab)));
  return t;
}

}  // namespace miniinfer
