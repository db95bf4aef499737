// Properties of the §A13 grammar over many seeds of our own Rng (deterministic: the seed of a
// failing case is printed), plus examples of wrong forms and bad data rows.
#include "corpus/grammar.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <set>

#include "base/error.h"
#include "base/rng.h"
#include "corpus/tokenizer.h"

namespace miniinfer {
const std::map<std::string, std::string>& embedded_corpus_files();
}

using namespace miniinfer;

namespace {

constexpr uint64_t kSeeds = 2000;

std::string joined(std::span<const std::string> words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Words of a canonical sentence written with single spaces: "yesterday I worked .".
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(' ', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool contains(const std::vector<Tense>& tenses, Tense tense) {
  return std::find(tenses.begin(), tenses.end(), tense) != tenses.end();
}

const std::vector<Tense> kAllTenses = {
    Tense::PastSimple,    Tense::PresentSimple,  Tense::PresentContinuous, Tense::WillFuture,
    Tense::GoingToFuture, Tense::PresentPerfect, Tense::Presente,          Tense::Preterito,
    Tense::Imperfecto,    Tense::Futuro,         Tense::Perfecto,          Tense::IrA};

}  // namespace

TEST_CASE(
    "every sampled sentence is complete, its prefixes are prefixes, and it parses as its tense") {
  const Grammar& g = Grammar::builtin();
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    Rng rng(seed);
    const SentenceSpec spec = g.sample_spec(rng);
    const Sentence s = g.render(spec);
    INFO("seed " << seed << ": " << to_string(spec.tense) << " '" << joined(s.words) << "'");
    REQUIRE(s.words.back() == ".");
    REQUIRE(g.is_complete(s.words));
    for (size_t n = 0; n < s.words.size(); ++n) {
      const std::span<const std::string> prefix(s.words.data(), n);
      REQUIRE(g.is_prefix(prefix));
      REQUIRE_FALSE(g.is_complete(prefix));
    }
    REQUIRE(contains(g.parse_tenses(s.words), spec.tense));
    if (spec.adverbial >= 0) {
      // The adverbial is the one adverbials(tense) lists, and it appears in the sentence.
      const auto& adverbial = g.adverbials(spec.tense).at(static_cast<size_t>(spec.adverbial));
      REQUIRE(std::search(s.words.begin(), s.words.end(), adverbial.begin(), adverbial.end()) !=
              s.words.end());
    }
  }
}

TEST_CASE("sampling is deterministic from the seed and reaches every tense and slot") {
  const Grammar& g = Grammar::builtin();
  std::set<Tense> tenses;
  bool no_adverbial = false, last_verb = false;
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    Rng a(seed), b(seed);
    const SentenceSpec spec = g.sample_spec(a);
    REQUIRE(spec == g.sample_spec(b));
    tenses.insert(spec.tense);
    no_adverbial |= spec.adverbial == -1;
    last_verb |= spec.verb + 1 == static_cast<int>(g.verbs(language_of(spec.tense)).size());
  }
  CHECK(tenses.size() == kAllTenses.size());
  CHECK(no_adverbial);
  CHECK(last_verb);
}

TEST_CASE("wrong forms and misplaced words are rejected") {
  const Grammar& g = Grammar::builtin();
  // Each is wrong at its last word but one (before "."): no sentence continues that way.
  const std::vector<std::string> wrong = {
      "yesterday I work .",
      "yesterday he works .",
      "tomorrow he worked .",
      "I am going to worked .",
      "I am going to working .",
      "he work .",
      "I works .",
      "now you are work .",
      "now he are working .",
      "I is working .",
      "I has worked .",
      "he have worked .",
      "I will worked .",
      "I will works .",
      "I have work .",
      "I have yesterday worked .",
      "already I have worked .",
      "yesterday I have worked .",
      "every day I worked .",
      "now I work .",
      "tomorrow I am working .",
      "I have already went .",
      "yesterday I goed .",
      "he goes to .",
      "ayer yo trabajo .",
      "ayer yo trabajaré .",
      "mañana yo trabajé .",
      "yo trabaja .",
      "él trabajo .",
      "yo ha trabajado .",
      "yo voy trabajar .",
      "yo voy a trabajado .",
      "ya yo he trabajar .",
      "antes yo trabajé .",
      "todos los días yo trabajaba .",
      "tú he trabajado .",
      "yesterday yo trabajé .",
      "ayer I worked .",
      "yo worked .",
      "I trabajé .",
      "ellos trabaja .",
      "nosotros trabajáis .",
      "yo voy a a trabajar .",
      "mañana yo va a trabajar .",
      "ya yo trabajé .",
  };
  for (const std::string& text : wrong) {
    INFO("'" << text << "'");
    const std::vector<std::string> words = words_of(text);
    CHECK_FALSE(g.is_complete(words));
    CHECK(g.parse_tenses(words).empty());
    CHECK_FALSE(g.is_prefix(std::span<const std::string>(words.data(), words.size() - 1)));
  }
  const std::vector<std::string> not_sentences = {
      "yo trabajé",  // no "."
      ".",          "I worked . .",         "I . worked",
      "I worked",   "Yesterday I worked .",  // canonical case only
      "yesterday",  "I am going to",        "unknownword ."};
  for (const std::string& text : not_sentences) {
    INFO("'" << text << "'");
    CHECK_FALSE(g.is_complete(words_of(text)));
    CHECK(g.parse_tenses(words_of(text)).empty());
  }
}

TEST_CASE("right forms in both languages are accepted with the tense they show") {
  const Grammar& g = Grammar::builtin();
  const std::vector<std::pair<std::string, Tense>> right = {
      {"yesterday I worked .", Tense::PastSimple},
      {"every day he works .", Tense::PresentSimple},
      {"now you are working .", Tense::PresentContinuous},
      {"tomorrow she will work .", Tense::WillFuture},
      {"next week I am going to work .", Tense::GoingToFuture},
      {"I have already worked .", Tense::PresentPerfect},
      {"he has eaten .", Tense::PresentPerfect},
      {"last night they went .", Tense::PastSimple},
      {"todos los días él trabaja .", Tense::Presente},
      {"ayer yo trabajé .", Tense::Preterito},
      {"antes yo trabajaba .", Tense::Imperfecto},
      {"mañana ella trabajará .", Tense::Futuro},
      {"ya yo he trabajado .", Tense::Perfecto},
      {"mañana yo voy a trabajar .", Tense::IrA},
      {"la semana pasada nosotros fuimos .", Tense::Preterito},
      {"vosotros habéis hecho .", Tense::Perfecto},
  };
  for (const auto& [text, tense] : right) {
    INFO("'" << text << "'");
    CHECK(g.is_complete(words_of(text)));
    CHECK(contains(g.parse_tenses(words_of(text)), tense));
  }
  // Syncretic forms parse as every tense they can be: "put" is base and past.
  const std::vector<Tense> put = g.parse_tenses(words_of("I put ."));
  CHECK(put == std::vector<Tense>{Tense::PastSimple, Tense::PresentSimple});
  const std::vector<Tense> fuimos = g.parse_tenses(words_of("nosotros trabajamos ."));
  CHECK(fuimos == std::vector<Tense>{Tense::Presente, Tense::Preterito});
}

TEST_CASE("an adverbial of one tense never completes a sentence of another") {
  const Grammar& g = Grammar::builtin();
  int checked = 0;
  for (Lang lang : {Lang::En, Lang::Es})
    for (Tense own : g.tenses(lang))
      for (Tense other : g.tenses(lang)) {
        const auto& legal = g.adverbials(other);
        for (const auto& adverbial : g.adverbials(own)) {
          if (std::find(legal.begin(), legal.end(), adverbial) != legal.end()) continue;
          // Verb 0 ("work", "trabajar") and pronoun 0 ("I", "yo") have no syncretic forms.
          std::vector<std::string> words = adverbial;
          const std::vector<std::string> bare = g.render({other, -1, 0, 0}).words;
          words.insert(words.end(), bare.begin(), bare.end());
          INFO(to_string(own) << " adverbial in " << to_string(other) << ": '" << joined(words)
                              << "'");
          CHECK_FALSE(g.is_complete(words));
          ++checked;
        }
      }
  CHECK(checked > 100);
}

TEST_CASE("sequences of sentences are complete and their prefixes are prefixes") {
  const Grammar& g = Grammar::builtin();
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    Rng rng(seed);
    const int count = 2 + static_cast<int>(rng.below(2));
    std::vector<std::string> words;
    for (int i = 0; i < count; ++i) {
      const Sentence s = g.sample(rng);
      words.insert(words.end(), s.words.begin(), s.words.end());
    }
    INFO("seed " << seed << ": '" << joined(words) << "'");
    REQUIRE(g.is_complete(words));
    REQUIRE(g.parse_tenses(words).empty());  // more than one sentence
    for (size_t n = 0; n <= words.size(); ++n)
      REQUIRE(g.is_prefix(std::span<const std::string>(words.data(), n)));
    // Dropping the last "." leaves a prefix that is not complete.
    REQUIRE_FALSE(g.is_complete(std::span<const std::string>(words.data(), words.size() - 1)));
  }
}

TEST_CASE("the lab's prompts are valid prefixes") {
  const Grammar& g = Grammar::builtin();
  const Tokenizer tokenizer(g.vocabulary());
  for (const char* prompt : {"Yesterday I", "Tomorrow he", "Now you", "I am going to", "Ayer yo",
                             "Mañana él", "Yesterday I worked", "I have already", "Ya yo he"}) {
    INFO("'" << prompt << "'");
    const std::vector<std::string> words = tokenizer.words(tokenizer.encode(prompt));
    CHECK(g.is_prefix(words));
    CHECK_FALSE(g.is_complete(words));
  }
  CHECK(g.is_prefix({}));
  CHECK_FALSE(g.is_complete({}));
}

TEST_CASE("both languages have every tense, with adverbials, pronouns and verbs") {
  const Grammar& g = Grammar::builtin();
  CHECK(g.tenses(Lang::En) == std::vector<Tense>(kAllTenses.begin(), kAllTenses.begin() + 6));
  CHECK(g.tenses(Lang::Es) == std::vector<Tense>(kAllTenses.begin() + 6, kAllTenses.end()));
  for (Tense tense : kAllTenses) {
    INFO(to_string(tense));
    CHECK(g.adverbials(tense).size() >= 3);
    const Sentence s = g.render({tense, 0, 0, 0});
    CHECK(g.is_complete(s.words));
  }
  CHECK(g.pronouns(Lang::En).at(0).word == "I");
  CHECK(g.pronouns(Lang::Es).at(0).word == "yo");
  CHECK(g.verbs(Lang::En).at(0).lemma == "work");
  CHECK(g.verbs(Lang::Es).at(0).lemma == "trabajar");
  CHECK(g.verbs(Lang::En).size() >= 40);
  CHECK(g.verbs(Lang::Es).size() >= 20);
  CHECK(g.render({Tense::PastSimple, 0, 0, 0}).words == words_of("yesterday I worked ."));
  CHECK(g.render({Tense::PresentPerfect, 0, 2, 0}).words == words_of("he has already worked ."));
  CHECK(g.render({Tense::IrA, 0, 2, 0}).words == words_of("mañana él va a trabajar ."));
}

TEST_CASE("the vocabulary is <bos>, '.', then every produced word sorted by bytes") {
  const Grammar& g = Grammar::builtin();
  const std::vector<std::string>& vocab = g.vocabulary();
  REQUIRE(vocab.size() > 2);
  CHECK(vocab[0] == "<bos>");
  CHECK(vocab[1] == ".");
  CHECK(std::is_sorted(vocab.begin() + 2, vocab.end()));
  CHECK(std::adjacent_find(vocab.begin() + 2, vocab.end()) == vocab.end());
  const std::set<std::string> in_vocab(vocab.begin(), vocab.end());
  std::set<std::string> produced;
  for (Tense tense : kAllTenses) {
    const Lang lang = language_of(tense);
    for (int a = -1; a < static_cast<int>(g.adverbials(tense).size()); ++a)
      for (int p = 0; p < static_cast<int>(g.pronouns(lang).size()); ++p)
        for (int v = 0; v < static_cast<int>(g.verbs(lang).size()); ++v)
          for (const std::string& w : g.render({tense, a, p, v}).words) produced.insert(w);
  }
  produced.insert("<bos>");
  CHECK(produced == in_vocab);
  CHECK(Grammar::from_files(embedded_corpus_files()).vocabulary() == vocab);
}

TEST_CASE("there are at least 600 distinct verb forms in the vocabulary") {
  const Grammar& g = Grammar::builtin();
  const std::set<std::string> in_vocab(g.vocabulary().begin(), g.vocabulary().end());
  std::set<std::string> forms;
  for (Lang lang : {Lang::En, Lang::Es})
    for (const Verb& verb : g.verbs(lang))
      for (const auto& [name, form] : verb.forms)
        if (in_vocab.count(form)) forms.insert(form);
  INFO(forms.size() << " distinct verb forms");
  CHECK(forms.size() >= 600);
  // Every English verb has the five forms, every Spanish verb 3 + 4 x 6.
  for (const Verb& verb : g.verbs(Lang::En)) CHECK(verb.forms.size() == 5);
  for (const Verb& verb : g.verbs(Lang::Es)) CHECK(verb.forms.size() == 27);
}

TEST_CASE("count_sentences is the number of distinct rendered word sequences") {
  const Grammar& g = Grammar::builtin();
  std::set<std::vector<std::string>> distinct;
  uint64_t specs = 0;
  for (Tense tense : kAllTenses) {
    const Lang lang = language_of(tense);
    for (int a = -1; a < static_cast<int>(g.adverbials(tense).size()); ++a)
      for (int p = 0; p < static_cast<int>(g.pronouns(lang).size()); ++p)
        for (int v = 0; v < static_cast<int>(g.verbs(lang).size()); ++v, ++specs)
          distinct.insert(g.render({tense, a, p, v}).words);
  }
  CHECK(g.count_sentences() == distinct.size());
  CHECK(distinct.size() < specs);  // some specs coincide ("I put ."), and count once
}

TEST_CASE("render rejects out-of-range indices with an Error") {
  const Grammar& g = Grammar::builtin();
  CHECK_THROWS_AS(g.render({Tense::PastSimple, -2, 0, 0}), Error);
  CHECK_THROWS_AS(g.render({Tense::PastSimple, 1000, 0, 0}), Error);
  CHECK_THROWS_AS(g.render({Tense::PastSimple, 0, 1000, 0}), Error);
  CHECK_THROWS_AS(g.render({Tense::Presente, 0, 0, -1}), Error);
  CHECK_THROWS_WITH(g.render({Tense::Presente, 0, 0, 1000}),
                    Catch::Matchers::StartsWith("render: verb 1000 out of range for es"));
}

TEST_CASE("is_prefix takes microseconds on 32 words") {
  const Grammar& g = Grammar::builtin();
  std::vector<std::vector<std::string>> inputs;
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    std::vector<std::string> words;
    while (words.size() < 32) {
      const Sentence s = g.sample(rng);
      words.insert(words.end(), s.words.begin(), s.words.end());
    }
    words.resize(32);
    inputs.push_back(std::move(words));
  }
  const int rounds = 50;
  size_t accepted = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < rounds; ++r)
    for (const auto& words : inputs) accepted += g.is_prefix(words);
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      (rounds * static_cast<double>(inputs.size()));
  WARN("is_prefix on 32 words: " << us << " us per call");
  CHECK(accepted == rounds * inputs.size());
  CHECK(us < 50.0);  // generous: a shared, loaded 2-core machine
}

// ---- Bad data ---------------------------------------------------------------------------

namespace {

// The embedded files with `row` appended to `file`; returns the line number it lands on.
std::map<std::string, std::string> with_row(const std::string& file, const std::string& row,
                                            int* line) {
  std::map<std::string, std::string> files = embedded_corpus_files();
  std::string& text = files.at(file);
  if (!text.empty() && text.back() != '\n') text += '\n';
  *line = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  text += row + "\n";
  return files;
}

void require_error(const std::map<std::string, std::string>& files, const std::string& expected) {
  INFO("expected: " << expected);
  try {
    (void)Grammar::from_files(files);
    FAIL("from_files accepted the bad data");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.rfind(expected, 0) == 0);
    if (message.rfind(expected, 0) != 0) WARN("got: " << message);
  }
}

}  // namespace

TEST_CASE("bad data rows give one-line errors naming file and line") {
  int line = 0;
  struct Case {
    const char* file;
    const char* row;
    const char* message;  // after "file:line: "
  };
  const std::vector<Case> cases = {
      {"verbs_en.tsv", "jump\tjumps\tjumped\tjumping", "expected 5 tab-separated columns"},
      {"verbs_en.tsv", "jump\tjumps\tjumped\tjumped\tjumping\tjumpy",
       "expected 5 tab-separated columns"},
      {"verbs_en.tsv", "jump\tjumps\t\tjumped\tjumping", "column 'past' is empty"},
      {"verbs_en.tsv", "work\tworks\tworked\tworked\tworking", "verb 'work' listed twice"},
      {"verbs_en.tsv", "Jump\tjumps\tjumped\tjumped\tjumping", "'Jump' must be lower case"},
      {"verbs_en.tsv", "jump\tjumps\tjumped.\tjumped\tjumping", "'jumped.' is not a single word"},
      {"verbs_es.tsv",
       "nadar\tnadado\tnadando\tnado,nadas,nada,nadamos,nadan\tnadé,nadaste,nadó,"
       "nadamos,nadasteis,nadaron\tnadaba,nadabas,nadaba,nadábamos,nadabais,"
       "nadaban\tnadaré,nadarás,nadará,nadaremos,nadaréis,nadarán",
       "column 'presente' needs 6 comma-separated forms"},
      {"verbs_es.tsv",
       "nadar\tnadado\tnadando\tnado,nadas,,nadamos,nadáis,nadan\tnadé,nadaste,"
       "nadó,nadamos,nadasteis,nadaron\tnadaba,nadabas,nadaba,nadábamos,nadabais,"
       "nadaban\tnadaré,nadarás,nadará,nadaremos,nadaréis,nadarán",
       "column 'presente' is missing the 3sg form"},
      {"verbs_es.tsv",
       "nadar\tnadado\tnadando\tnado,nadas,nada,nadamos,nadáis,nadan\tnadé,nadaste,"
       "nadó,nadamos,nadasteis,nadaron,nadó\tnadaba,nadabas,nadaba,nadábamos,"
       "nadabais,nadaban\tnadaré,nadarás,nadará,nadaremos,nadaréis,nadarán",
       "column 'preterito' needs 6 comma-separated forms"},
      {"adverbials.tsv", "past\tthe day before", "unknown tense 'past'"},
      {"adverbials.tsv", "past-simple,presente\tback then",
       "'back then' mixes tenses of en and es"},
      {"adverbials.tsv", "past-simple", "expected 2 tab-separated columns"},
      {"adverbials.tsv", "past-simple\tyesterday", "'yesterday' is already listed for past-simple"},
      {"pronouns.tsv", "en\tthou\t7", "bad person '7'"},
      {"pronouns.tsv", "en\tthou\tx", "bad person 'x'"},
      {"pronouns.tsv", "en\tthou\t*", "bad person '*'"},
      {"pronouns.tsv", "en\tthou\t-1", "bad person '-1'"},
      {"pronouns.tsv", "fr\tje\t0", "unknown language 'fr'"},
      {"pronouns.tsv", "es\tÉl\t2", "'Él' must be lower case"},
      {"function_words.tsv", "en\tshall\t*\tshall", "unknown role 'shall'"},
      {"function_words.tsv", "en\tbe\t0\tbe", "en role 'be' already has a word for person 0"},
  };
  for (const Case& c : cases) {
    const auto files = with_row(c.file, c.row, &line);
    require_error(files, std::string(c.file) + ":" + std::to_string(line) + ": " + c.message);
  }

  auto files = embedded_corpus_files();
  files.erase("verbs_es.tsv");
  require_error(files, "corpus file 'verbs_es.tsv' is missing");
  files = embedded_corpus_files();
  files["extra.tsv"] = "a\tb\n";
  require_error(files, "corpus file 'extra.tsv' is not one the grammar reads");
  files = embedded_corpus_files();
  files["pronouns.tsv"] = "# comment\nlang\tword\n";
  require_error(files, "pronouns.tsv:2: header must be 'lang<TAB>word<TAB>person'");
  files = embedded_corpus_files();
  files["function_words.tsv"] = "lang\trole\tperson\tword\nen\tbe\t0\tam\n";
  require_error(files, "function_words.tsv: en role 'be' has no word for person 1 (2sg)");
  files = embedded_corpus_files();
  files["pronouns.tsv"] = "lang\tword\tperson\nen\tI\t0\nen\tbad\xC3\t1\n";
  require_error(files, "pronouns.tsv:3: invalid UTF-8 at byte 6 of the line");
}

TEST_CASE("blank lines, comments and CRLF line ends in the data are accepted") {
  auto files = embedded_corpus_files();
  std::string crlf;
  for (char c : files.at("pronouns.tsv"))
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  files["pronouns.tsv"] = "\n# a comment\n\n" + crlf;
  const Grammar g = Grammar::from_files(files);
  CHECK(g.vocabulary() == Grammar::builtin().vocabulary());
  CHECK(g.count_sentences() == Grammar::builtin().count_sentences());
}
