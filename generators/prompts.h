// RapidCheck generators over the corpus grammar: the three prompt families of the lab, the
// run parameters, and a shrinker that only ever proposes grammatical prompts. A prompt is a
// point of the grammar (a list of SentenceSpecs and a cut), so shrinking moves through the
// grammar (fewer sentences, shorter prefixes, canonical words, English before Spanish)
// instead of through token ids, and a shrunk counterexample is still something a person
// would type.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <rapidcheck.h>

#include "corpus/grammar.h"

namespace miniinfer::gen {

enum class Family : uint8_t {
  AdverbialPronoun,  // (a) "Yesterday I", "Mañana él"
  Partial,           // (b) valid partial sentences of 4-8 words: "I am going to"
  MixedTense,        // (c) 8-32 words over several sentences in different tenses
};
const char* to_string(Family family);

struct Prompt {
  Family family = Family::AdverbialPronoun;
  std::vector<SentenceSpec> sentences;  // rendered and concatenated...
  int length = 0;                       // ...then cut to this many words (>= 1)

  // The prompt's words: a valid prefix of the grammar by construction.
  std::vector<std::string> words() const;
  std::string text() const;
  bool operator==(const Prompt&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Prompt& prompt);

rc::Gen<Prompt> genAdverbialPrompt();
rc::Gen<Prompt> genPartialPrompt();
rc::Gen<Prompt> genMixedTensePrompt();
rc::Gen<Prompt> genPrompt();  // any family: 2 : 2 : 1

// Every proposal is a different, grammatical word sequence and strictly smaller under
// (sentence count, words, Spanish tenses, word-class indices); most aggressive first.
std::vector<Prompt> shrink_prompt(const Prompt& prompt);

// Language, tense mix and length bucket, for RC_TAG / RC_CLASSIFY.
std::vector<std::string> tags_of(const Prompt& prompt);

struct RunParams {
  uint64_t seed = 0;
  int max_new_tokens = 1;
  float temperature = 0.0f;  // 0 is greedy
  int top_k = 0;             // 0 is off
  float top_p = 1.0f;        // 1 is off
  bool operator==(const RunParams&) const = default;
};
std::ostream& operator<<(std::ostream& os, const RunParams& params);

// Always max_new_tokens new tokens (the lab's "over 64 new tokens"), shrinking toward fewer, so
// a shrunk case stops just past the first divergence; the sampler shrinks toward greedy, and
// the seed toward 0.
rc::Gen<RunParams> genRunParams(int max_new_tokens);

// n, shrinking toward 1.
rc::Gen<int> genCount(int n);

// Sorted, distinct cut points strictly inside (0, length), at least one when length >= 2:
// where a chunked prefill or a resume splits the prompt. Shrinks toward a single cut.
rc::Gen<std::vector<int>> genChunkBoundaries(int length);

// The size of a batch: 2..max (a batch of 1 would compare a run with itself), shrinking to 2.
rc::Gen<int> genBatchSize(int max);

// A permutation of 0..n-1 that moves something when n >= 2 (a reorder that is a real one),
// shrinking toward swapping the first two.
rc::Gen<std::vector<int>> genPermutation(int n);

}  // namespace miniinfer::gen
