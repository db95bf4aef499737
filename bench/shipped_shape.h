// The random model of the shipped shape that the speed programs time when no model file is
// given: V=900, D=64, L=4, H=4, F=256, max_seq_len 512, weights from init_model's seed 1. A
// fixed vocabulary size keeps figures comparable across corpus changes (the shipped model's V
// moves with corpus/*.tsv).
#pragma once
#include <string>
#include <vector>

#include "model/model.h"

namespace miniinfer {

inline Model shipped_shape_model() {
  Config c;
  c.vocab_size = 900;
  c.d_model = 64;
  c.n_layer = 4;
  c.n_head = 4;
  c.d_ff = 256;
  c.max_seq_len = 512;
  std::vector<std::string> vocab;
  for (int i = 0; i < c.vocab_size; ++i) vocab.push_back("w" + std::to_string(i));
  return init_model(c, vocab, 1);
}

}  // namespace miniinfer
