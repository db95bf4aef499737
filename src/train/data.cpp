// Sentence streams and window packing for training.
#include "train/data.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <map>
#include <memory>

#include "base/rng.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"

namespace miniinfer::train {

SentenceSource grammar_sentences(const Grammar& grammar, const Tokenizer& tokenizer, uint64_t seed) {
  auto rng = std::make_shared<Rng>(seed);
  return [&grammar, &tokenizer, rng] { return tokenizer.encode_words(grammar.sample(*rng).words); };
}

GrammarEntropy grammar_entropy(const Grammar& grammar) {
  // Enumerates every spec with the probability sample_spec gives it; specs that render the
  // same words ("I put the book on the table ." in past and present) pool their probability.
  std::map<std::vector<std::string>, double> p;
  GrammarEntropy e;
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense tense : grammar.tenses(lang))
      for (const SentenceSpec& spec : grammar.specs(tense)) {
        const double share = grammar.probability(spec);
        const Sentence s = grammar.render(spec);
        p[s.words] += share;
        e.mean_tokens += share * static_cast<double>(s.words.size());
      }
  for (const auto& [words, q] : p) e.per_sentence -= q * std::log(q);
  e.per_token = e.per_sentence / e.mean_tokens;
  e.distinct = p.size();
  return e;
}

void WindowPacker::next(std::span<int> window) {
  assert(window.size() == static_cast<size_t>(ctx_) + 1);
  size_t filled = 0;
  while (filled < window.size()) {
    const std::vector<int> sentence = source_();
    assert(!sentence.empty() && "a sentence source returned an empty sentence");
    const size_t n = std::min(sentence.size(), window.size() - filled);
    std::copy_n(sentence.begin(), n, window.begin() + static_cast<std::ptrdiff_t>(filled));
    filled += n;
  }
}

void WindowPacker::next_batch(int B, std::vector<int>& inputs, std::vector<int>& targets) {
  const size_t T = static_cast<size_t>(ctx_);
  inputs.resize(static_cast<size_t>(B) * T);
  targets.resize(static_cast<size_t>(B) * T);
  window_.resize(T + 1);
  for (int b = 0; b < B; ++b) {
    next(window_);
    std::copy_n(window_.begin(), T, inputs.begin() + static_cast<std::ptrdiff_t>(b * T));
    std::copy_n(window_.begin() + 1, T, targets.begin() + static_cast<std::ptrdiff_t>(b * T));
  }
}

}  // namespace miniinfer::train
