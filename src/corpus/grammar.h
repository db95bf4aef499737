// The §A13 verb grammar: English and Spanish sentences of the form
// [time adverbial] pronoun verb-phrase "." whose verb form agrees with the adverbial's tense
// and the pronoun's person. It samples sentences from a seed, renders a SentenceSpec (a point
// of the grammar, which is what generators shrink), and recognizes complete sentences and
// valid prefixes. Data come from corpus/*.tsv, embedded in the binary at build time.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/rng.h"

namespace miniinfer {

enum class Lang : uint8_t { En, Es };

// Tenses, English first. Each adverbial is tagged with the tense (class) it calls for.
enum class Tense : uint8_t {
  PastSimple,         // yesterday I worked .
  PresentSimple,      // every day he works .
  PresentContinuous,  // now you are working .
  WillFuture,         // tomorrow she will work .
  GoingToFuture,      // next week I am going to work .
  PresentPerfect,     // I have already worked .
  Presente,           // todos los días él trabaja .
  Preterito,          // ayer yo trabajé .
  Imperfecto,         // antes yo trabajaba .
  Futuro,             // mañana ella trabajará .
  Perfecto,           // ya yo he trabajado .
  IrA,                // mañana yo voy a trabajar .
};

const char* to_string(Lang lang);
const char* to_string(Tense tense);
Lang language_of(Tense tense);

// A point of the grammar. Every index is into the grammar's own word classes; index 0 is the
// canonical (first) word of its class, which is where shrinking heads.
struct SentenceSpec {
  Tense tense = Tense::PastSimple;
  int adverbial = -1;  // index into adverbials(tense); -1 means no adverbial
  int pronoun = 0;     // index into pronouns(language_of(tense))
  int verb = 0;        // index into verbs(language_of(tense))
  bool operator==(const SentenceSpec&) const = default;
};

struct Sentence {
  SentenceSpec spec;
  std::vector<std::string> words;  // canonical spelling, ending with "."
  Lang lang() const { return language_of(spec.tense); }
};

struct Pronoun {
  std::string word;  // "I", "he", "yo", "ellos"
  int person;        // 0..5: 1sg 2sg 3sg 1pl 2pl 3pl
};

struct Verb {
  std::string lemma;                          // "work", "trabajar"
  std::map<std::string, std::string> forms;   // form name -> word; names listed in docs/corpus.md
};

class Grammar {
 public:
  // The grammar of the embedded corpus/*.tsv files. Built once; thread-safe to read.
  static const Grammar& builtin();
  // A grammar from named TSV texts (file name -> contents); throws Error naming the file and
  // line of the first bad row. builtin() is from_files(embedded files).
  static Grammar from_files(const std::map<std::string, std::string>& files);

  // Every word the grammar can produce: "<bos>", ".", then the rest in a fixed, documented
  // order. This is the model's vocabulary.
  const std::vector<std::string>& vocabulary() const;

  std::vector<Tense> tenses(Lang lang) const;
  const std::vector<std::vector<std::string>>& adverbials(Tense tense) const;  // each a word list
  const std::vector<Pronoun>& pronouns(Lang lang) const;
  const std::vector<Verb>& verbs(Lang lang) const;
  // The auxiliaries and particles the tense templates use (am, will, going, he, voy, a, ...),
  // in file order, each once. "." is not among them.
  std::vector<std::string> function_words(Lang lang) const;

  // Throws Error if an index is out of range.
  Sentence render(const SentenceSpec& spec) const;
  SentenceSpec sample_spec(Rng& rng) const;
  Sentence sample(Rng& rng) const { return render(sample_spec(rng)); }

  // Recognition takes words in canonical spelling ("." is a word; Tokenizer::words gives
  // them), so "Yesterday" is not "yesterday" here. One or more complete sentences, nothing else.
  bool is_complete(std::span<const std::string> words) const;
  // Zero or more complete sentences followed by a (possibly empty) prefix of one more.
  bool is_prefix(std::span<const std::string> words) const;
  // The tense(s) a complete sentence can be parsed as; empty if it is not one sentence.
  std::vector<Tense> parse_tenses(std::span<const std::string> sentence) const;

  // How many distinct single sentences the grammar can produce: distinct word sequences, so
  // two specs that render the same words ("I put ." in past and present) count once.
  uint64_t count_sentences() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace miniinfer
