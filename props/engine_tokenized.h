// An engine whose tokenizer is not ours (BPE, characters), behind props' word-level interface.
// props draws, checks and shrinks prompts of MiniGPT's words; each word is a fixed list of the
// engine's token ids (its tokenize op's answer), a sequence is the concatenation of its words'
// ids, and every position props names (cursor, truncate, fork) is a word count translated to
// the engine's positions. The logits props sees for a word are the engine's own row at the
// word's last token, read at the first token id of every word: word w's logit is
// row[first_id(w)], copied, so both paths' bytes stay the engine's bytes (docs/protocol.md,
// "An engine with its own tokenizer").
#pragma once
#include <memory>
#include <vector>

#include "props/engines.h"

namespace miniinfer::props {

// `inner` speaks the engine's ids (its vocab_size is the engine's row width);
// `word_ids[w]` are the ids of our word w (each at least one id in range); `model_config` is
// the model's (its vocab_size is word_ids.size()); `capacity` is props' capacity in words.
// K/V rows and trace are withheld: they are in the engine's positions and its own model's shape.
std::unique_ptr<EngineUnderTest> tokenized_engine(std::unique_ptr<EngineUnderTest> inner,
                                                  std::vector<std::vector<int>> word_ids,
                                                  const Config& model_config, int capacity);

}  // namespace miniinfer::props
