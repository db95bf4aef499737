// Before any case runs: can the properties run on this model at all? A model whose vocabulary
// lacks words the grammar's prompts use, whose context cannot hold the longest case, or whose
// logits are not finite would make every property fail for reasons that are not the cache's.
#pragma once
#include <string>

#include "model/model.h"

namespace miniinfer::props {

// The positions the longest case needs: a prompt of up to 32 words (the mixed-tense family)
// and p2's 256 new tokens.
constexpr int kLongestCase = 32 + 256;

// Throws Error "model LABEL: ..." naming what is wrong: the first missing words, the
// max_seq_len, or the first token whose logits are not finite.
void check_model_serves_properties(const Model& model, const std::string& label);

}  // namespace miniinfer::props
