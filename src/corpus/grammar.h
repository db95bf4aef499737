// The §A13 verb grammar: English and Spanish sentences of the form
// [time adverbial] pronoun verb-phrase [object or predicate] "." whose verb form agrees with
// the adverbial's tense and the pronoun's person, whose verb takes the complement its frame
// asks for, and whose adverbial stands where a speaker puts it. It samples sentences from a seed, renders a
// SentenceSpec (a point of the grammar, which is what generators shrink), and recognizes complete sentences
// and valid prefixes. Data come from corpus/*.tsv, embedded in the binary at build time.
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
  Perfecto,           // yo ya he trabajado .
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
  // Which complement (object or predicate) the verb takes, 0..complement_choices()-1. 0 is
  // canonical: nothing for a verb that takes nothing or whose object is optional, else the
  // first phrase of the verb's class; an optional object's phrases are 1..n.
  int complement = 0;
  bool operator==(const SentenceSpec&) const = default;
};

struct Sentence {
  SentenceSpec spec;
  std::vector<std::string> words;  // canonical spelling, ending with "."
  size_t subject = 0;              // index of the pronoun in words
  Lang lang() const { return language_of(spec.tense); }
};

struct Pronoun {
  std::string word;  // "I", "he", "yo", "ellos"
  int person;        // 0..5: 1sg 2sg 3sg 1pl 2pl 3pl
  char gender;       // 'm' or 'f' where the pronoun marks it, '-' where it does not
};

// What a verb takes after it (verbs_*.tsv's frame column).
struct Frame {
  enum class Kind : uint8_t { Intransitive, Transitive, Copular };
  Kind kind = Kind::Intransitive;
  bool optional = false;   // transitive?:CLASS: the object may be left out
  std::string complement;  // the class in complements.tsv; empty when intransitive
};

struct Verb {
  std::string lemma;                         // "work", "trabajar"
  std::map<std::string, std::string> forms;  // form name -> word; names listed in docs/corpus.md
  Frame frame;
  bool stative = false;  // no continuous form ("now they are knowing" is not English)
};

// Where an adverbial stands (adverbials.tsv's position column).
enum class Position : uint8_t { Front, AfterSubject, AfterAuxiliary };

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
  // Each a word list, in its canonical form (masculine singular where it agrees).
  const std::vector<std::vector<std::string>>& adverbials(Tense tense) const;
  Position adverbial_position(Tense tense, int adverbial) const;
  const std::vector<Pronoun>& pronouns(Lang lang) const;
  const std::vector<Verb>& verbs(Lang lang) const;
  // The auxiliaries and particles the tense templates use (am, will, going, he, voy, a, ...),
  // in file order, each once. "." is not among them.
  std::vector<std::string> function_words(Lang lang) const;

  // The phrases verb `verb` of `lang` can take, each in its canonical form (singular where
  // it agrees); empty for an intransitive verb.
  std::vector<std::vector<std::string>> complements(Lang lang, int verb) const;
  // How many values SentenceSpec::complement has for this verb: 1 (nothing) if intransitive,
  // n if its complement is required, n + 1 if optional.
  int complement_choices(Lang lang, int verb) const;
  // False for a stative verb in the present continuous.
  bool allows(Tense tense, int verb) const;
  // Why spec is not a sentence of the grammar (an index out of range, a stative verb in the
  // continuous), or "" if it is one.
  std::string misfit(const SentenceSpec& spec) const;
  // spec made renderable with the fewest changes: an out-of-range complement becomes 0, a
  // verb the tense does not allow becomes verb 0. Other indices must be in range.
  SentenceSpec fit(SentenceSpec spec) const;

  // Throws Error (misfit's reason) if spec is not a sentence of the grammar.
  Sentence render(const SentenceSpec& spec) const;
  // Every wording the recognizer accepts for spec: its rendering, then, for a pronoun that
  // does not mark gender (yo, ustedes), the wording with the feminine form of an adverbial
  // that agrees in gender ("de niña yo hablaba ."), which rendering never produces.
  std::vector<std::vector<std::string>> wordings(const SentenceSpec& spec) const;
  SentenceSpec sample_spec(Rng& rng) const;
  Sentence sample(Rng& rng) const { return render(sample_spec(rng)); }
  // Every spec of a tense, in index order, and the probability sample_spec draws each one.
  std::vector<SentenceSpec> specs(Tense tense) const;
  double probability(const SentenceSpec& spec) const;
  // Every word the sentences of `lang` use, sorted, without ".".
  const std::vector<std::string>& words(Lang lang) const;

  // Recognition takes words in canonical spelling ("." is a word; Tokenizer::words gives
  // them), so "Yesterday" is not "yesterday" here. One or more complete sentences, nothing else.
  bool is_complete(std::span<const std::string> words) const;
  // Zero or more complete sentences followed by a (possibly empty) prefix of one more.
  bool is_prefix(std::span<const std::string> words) const;
  // The tense(s) a complete sentence can be parsed as; empty if it is not one sentence.
  std::vector<Tense> parse_tenses(std::span<const std::string> sentence) const;

  // How many distinct single sentences the grammar accepts: distinct word sequences, so two
  // specs that render the same words ("I put the book on the table ." in past and present)
  // count once, and the feminine wordings of wordings() count too.
  uint64_t count_sentences() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace miniinfer
