// `minigpt corpus` (statistics and samples of the §A13 grammar) and `minigpt tokenize`
// (a prompt's token ids under the grammar's vocabulary). docs/corpus.md quotes --stats.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "base/rng.h"
#include "cli/command.h"
#include "corpus/grammar.h"
#include "corpus/tokenizer.h"

namespace miniinfer::cli {
namespace {

using WordSet = std::set<std::string>;

struct LangStats {
  WordSet pronouns, adverbial_words, verb_forms, function_words, all;
  std::set<std::vector<std::string>> adverbial_phrases;  // distinct, whatever their tenses
  std::set<std::vector<std::string>> complements;        // objects and predicates, distinct
  size_t lemmas = 0;
  uint64_t sentences = 0;
  uint64_t specs = 0;  // points of the grammar (SentenceSpecs) sampling can draw
};

void print_row(const char* label, size_t en, size_t es, size_t both) {
  fmt::print("  {:<26}{:>8}{:>8}{:>8}\n", label, en, es, both);
}

size_t union_size(const WordSet& a, const WordSet& b) {
  WordSet all = a;
  all.insert(b.begin(), b.end());
  return all.size();
}

int run_stats(const Grammar& grammar) {
  const std::vector<std::string>& vocab = grammar.vocabulary();
  const WordSet in_vocab(vocab.begin(), vocab.end());
  LangStats stats[2];
  std::set<std::vector<std::string>> distinct_by_tense[12];
  for (Lang lang : {Lang::En, Lang::Es}) {
    LangStats& s = stats[static_cast<int>(lang)];
    for (const Pronoun& p : grammar.pronouns(lang)) s.pronouns.insert(p.word);
    for (Tense tense : grammar.tenses(lang)) {
      for (const auto& adverbial : grammar.adverbials(tense)) {
        s.adverbial_phrases.insert(adverbial);
        s.adverbial_words.insert(adverbial.begin(), adverbial.end());
      }
    }
    for (const Verb& verb : grammar.verbs(lang))
      for (const auto& [name, form] : verb.forms)
        if (in_vocab.count(form)) s.verb_forms.insert(form);  // gerundios are never produced
    s.lemmas = grammar.verbs(lang).size();
    for (const std::string& word : grammar.function_words(lang)) s.function_words.insert(word);
    for (int v = 0; v < static_cast<int>(grammar.verbs(lang).size()); ++v)
      for (const auto& phrase : grammar.complements(lang, v)) s.complements.insert(phrase);
    s.all.insert(grammar.words(lang).begin(), grammar.words(lang).end());
    s.all.insert(".");
    // Distinct sentences per tense and language, by brute-force enumeration (a check on the
    // recognizer's own count, which the total line reports).
    std::set<std::vector<std::string>> distinct;
    for (Tense tense : grammar.tenses(lang))
      for (const SentenceSpec& spec : grammar.specs(tense)) {
        ++s.specs;
        for (std::vector<std::string>& words : grammar.wordings(spec)) {
          distinct_by_tense[static_cast<int>(tense)].insert(words);
          distinct.insert(std::move(words));
        }
      }
    s.sentences = distinct.size();
  }
  const LangStats& en = stats[0];
  const LangStats& es = stats[1];

  fmt::print("vocabulary: {} tokens (\"<bos>\", \".\" and {} words)\n\n", vocab.size(), vocab.size() - 2);
  fmt::print("  {:<26}{:>8}{:>8}{:>8}\n", "word class", "en", "es", "all");
  print_row("pronouns", en.pronouns.size(), es.pronouns.size(), union_size(en.pronouns, es.pronouns));
  print_row("adverbial phrases", en.adverbial_phrases.size(), es.adverbial_phrases.size(),
            en.adverbial_phrases.size() + es.adverbial_phrases.size());
  print_row("adverbial words", en.adverbial_words.size(), es.adverbial_words.size(),
            union_size(en.adverbial_words, es.adverbial_words));
  print_row("verb lemmas", en.lemmas, es.lemmas, en.lemmas + es.lemmas);
  print_row("objects and predicates", en.complements.size(), es.complements.size(),
            en.complements.size() + es.complements.size());
  print_row("distinct verb forms", en.verb_forms.size(), es.verb_forms.size(),
            union_size(en.verb_forms, es.verb_forms));
  print_row("function words", en.function_words.size(), es.function_words.size(),
            union_size(en.function_words, es.function_words));
  print_row("words (with \".\")", en.all.size(), es.all.size(), union_size(en.all, es.all));
  WordSet shared;
  for (const std::string& word : en.all)
    if (es.all.count(word) && word != ".") shared.insert(word);
  fmt::print("  shared by both languages: {}\n", fmt::join(shared, ", "));

  fmt::print("\nadverbials by tense:\n");
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense tense : grammar.tenses(lang)) {
      std::vector<std::string> phrases;
      for (const auto& adverbial : grammar.adverbials(tense))
        phrases.push_back(fmt::format("{}", fmt::join(adverbial, " ")));
      fmt::print("  {} {:<20}{:>3}  {}\n", to_string(lang), to_string(tense), phrases.size(),
                 fmt::join(phrases, ", "));
    }

  fmt::print(
      "\ndistinct sentences (word sequences; specs that render alike count once; a\n"
      "sentence that parses as two tenses counts under both, and once in the totals):\n");
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense tense : grammar.tenses(lang))
      fmt::print("  {} {:<20}{:>8}\n", to_string(lang), to_string(tense),
                 distinct_by_tense[static_cast<int>(tense)].size());
  fmt::print("  en total{:>21}\n  es total{:>21}\n  all{:>26}\n", en.sentences, es.sentences,
             grammar.count_sentences());
  fmt::print("  (from {} English and {} Spanish specs)\n", en.specs, es.specs);
  if (en.sentences + es.sentences != grammar.count_sentences())
    fail("internal check: enumeration finds {} sentences, the recognizer counts {}",
         en.sentences + es.sentences, grammar.count_sentences());
  return kExitOk;
}

int run_corpus(const std::vector<std::string>& argv) {
  const Args args(argv, {"sample", "seed", "words"}, {"stats"});
  const Grammar& grammar = Grammar::builtin();
  if (int(args.has("stats")) + int(args.has("sample")) + int(args.has("words")) != 1)
    fail("give exactly one of --stats, --sample N or --words LANG (see minigpt corpus --help)");
  if (args.has("words")) {
    if (args.has("seed")) fail("--seed goes with --sample, not --words");
    const std::string lang = args.require("words");
    if (lang != "en" && lang != "es") fail("flag --words: '{}' is not a language (en or es)", lang);
    for (const std::string& word : grammar.words(lang == "en" ? Lang::En : Lang::Es))
      fmt::print("{}\n", word);
    return kExitOk;
  }
  if (args.has("stats")) {
    if (args.has("seed")) fail("--seed goes with --sample, not --stats");
    return run_stats(grammar);
  }
  const int n = args.get_int("sample", 0);
  if (n < 0) fail("flag --sample: '{}' must be 0 or more", n);
  const uint64_t seed = args.get_u64("seed", 0);
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    const Sentence sentence = grammar.sample(rng);
    fmt::print("{} {:<20}{}\n", to_string(sentence.lang()), to_string(sentence.spec.tense),
               fmt::join(sentence.words, " "));
  }
  return kExitOk;
}

int run_tokenize(const std::vector<std::string>& argv) {
  const Args args(argv, {"prompt"}, {});
  const Tokenizer tokenizer(Grammar::builtin().vocabulary());
  const std::vector<int> ids = tokenizer.encode(args.require("prompt"));
  fmt::print("{}\n", fmt::join(ids, " "));
  return kExitOk;
}

}  // namespace

MINIGPT_COMMAND("corpus", "statistics and samples of the verb-grammar corpus",
                "usage: minigpt corpus --stats\n"
                "       minigpt corpus --sample N [--seed S]\n"
                "       minigpt corpus --words LANG\n\n"
                "  --stats      vocabulary counts by language and word class (pronouns,\n"
                "               adverbials by tense, verb lemmas and distinct forms, function\n"
                "               words) and the number of distinct sentences\n"
                "  --sample N   print N sentences drawn from the grammar, one per line, each\n"
                "               labelled with its language and tense:\n"
                "               en past-simple        yesterday I worked .\n"
                "  --seed S     seed of the sample (default 0); the same seed prints the same lines\n"
                "  --words LANG every word the sentences of LANG (en or es) use, one per line, sorted\n"
                "               (what the spelling test checks against Hunspell's dictionaries)\n\n"
                "The grammar is built from corpus/*.tsv, embedded at build time (docs/corpus.md).",
                run_corpus);

MINIGPT_COMMAND("tokenize", "print the token ids of a prompt",
                "usage: minigpt tokenize --prompt TEXT\n\n"
                "Prints the token ids of TEXT, space-separated, under the grammar's vocabulary\n"
                "(the vocabulary every model trained on the corpus uses). Matching ignores case,\n"
                "'.' is a token of its own and any whitespace separates words. An unknown word\n"
                "or invalid UTF-8 is an error (exit 2, refused) naming the word and its nearest known\n"
                "words, or the byte offset:\n"
                "  minigpt tokenize --prompt \"Yesterday I\"\n"
                "  minigpt tokenize --prompt \"Ayer yo trabajé.\"",
                run_tokenize);

}  // namespace miniinfer::cli
