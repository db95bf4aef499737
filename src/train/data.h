// Training data: windows of whole sentences. A window starts at a sentence start (so a
// prompt at positions 0, 1 is in distribution, with no <bos>), takes sentences until it holds
// ctx + 1 tokens, and drops the rest of the last one. Inputs are window[0..ctx), targets
// window[1..ctx]. The sentence source is a function, so tests can feed synthetic streams.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace miniinfer {
class Grammar;
class Tokenizer;
}  // namespace miniinfer

namespace miniinfer::train {

// Each call returns the next sentence as token ids (at least one token).
using SentenceSource = std::function<std::vector<int>()>;
// A fresh, deterministic sentence stream for a seed.
using SentenceSourceFactory = std::function<SentenceSource(uint64_t seed)>;

// Sentences the grammar samples from Rng(seed), encoded by the tokenizer.
SentenceSource grammar_sentences(const Grammar& grammar, const Tokenizer& tokenizer, uint64_t seed);

// The entropy of the grammar's sentence distribution (Grammar::sample: tense, adverbial or
// none, pronoun and verb each uniform), over distinct word sequences, and its rate per token:
// no model's expected loss on a long stream of these sentences can be below `per_token`.
struct GrammarEntropy {
  double per_sentence = 0;  // nats
  double mean_tokens = 0;   // tokens per sentence, "." included
  double per_token = 0;     // nats/token: per_sentence / mean_tokens
  uint64_t distinct = 0;    // distinct sentences
};
GrammarEntropy grammar_entropy(const Grammar& grammar);

class WindowPacker {
 public:
  WindowPacker(SentenceSource source, int ctx) : source_(std::move(source)), ctx_(ctx) {}
  // Fills ctx + 1 tokens.
  void next(std::span<int> window);
  // B windows split into inputs and targets, each (B, ctx) row-major.
  void next_batch(int B, std::vector<int>& inputs, std::vector<int>& targets);

 private:
  SentenceSource source_;
  int ctx_;
  std::vector<int> window_;
};

}  // namespace miniinfer::train
