// The §A13 grammar: loads and validates corpus/*.tsv, renders and samples SentenceSpecs, and
// recognizes sentences with a trie of every distinct sentence (built once by enumerating the
// whole, finite grammar), so is_prefix is one hash lookup per word.
#include "corpus/grammar.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>
#include <unordered_map>

#include "base/error.h"
#include "corpus/tokenizer.h"

namespace miniinfer {

const std::map<std::string, std::string>& embedded_corpus_files();  // generated at build time

namespace {

constexpr size_t kTenseCount = 12;
constexpr int kPersons = 6;
constexpr std::array<const char*, kPersons> kPersonNames = {"1sg", "2sg", "3sg",
                                                            "1pl", "2pl", "3pl"};

struct TenseInfo {
  Tense tense;
  const char* name;
  Lang lang;
};
constexpr std::array<TenseInfo, kTenseCount> kTenses = {{
    {Tense::PastSimple, "past-simple", Lang::En},
    {Tense::PresentSimple, "present-simple", Lang::En},
    {Tense::PresentContinuous, "present-continuous", Lang::En},
    {Tense::WillFuture, "will-future", Lang::En},
    {Tense::GoingToFuture, "going-to-future", Lang::En},
    {Tense::PresentPerfect, "present-perfect", Lang::En},
    {Tense::Presente, "presente", Lang::Es},
    {Tense::Preterito, "preterito", Lang::Es},
    {Tense::Imperfecto, "imperfecto", Lang::Es},
    {Tense::Futuro, "futuro", Lang::Es},
    {Tense::Perfecto, "perfecto", Lang::Es},
    {Tense::IrA, "ir-a", Lang::Es},
}};

size_t tense_index(Tense tense) { return static_cast<size_t>(tense); }
size_t lang_index(Lang lang) { return static_cast<size_t>(lang); }

// The files and their header rows. English verb columns are the form names; a Spanish tense
// column holds the six persons, and its forms are named "presente.1sg" .. "futuro.3pl".
const std::vector<std::string> kPronounColumns = {"lang", "word", "person"};
const std::vector<std::string> kAdverbialColumns = {"tenses", "adverbial"};
const std::vector<std::string> kFunctionColumns = {"lang", "role", "person", "word"};
const std::vector<std::string> kEnVerbColumns = {"base", "3sg", "past", "past_participle", "ing"};
const std::vector<std::string> kEsVerbColumns = {"infinitivo", "participio", "gerundio", "presente",
                                                 "preterito",  "imperfecto", "futuro"};
constexpr size_t kEsFiniteColumn = 3;  // first of the per-person columns
const std::map<std::string, std::vector<std::string>> kFunctionRoles = {
    {"en", {"be", "have", "will", "going", "to"}}, {"es", {"haber", "ir", "a"}}};

struct Row {
  int line;
  std::vector<std::string> cells;
};

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \r");
  if (first == std::string_view::npos) return "";
  return std::string(s.substr(first, s.find_last_not_of(" \r") - first + 1));
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string_view::npos ? at : at - start)));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// Rows of a TSV text after its header; blank lines and lines starting with '#' are skipped.
std::vector<Row> read_tsv(const std::string& file, const std::string& text,
                          const std::vector<std::string>& columns) {
  std::vector<Row> rows;
  bool header_seen = false;
  int line = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view raw(text.data() + start, end - start);
    start = end + 1;
    ++line;
    if (trim(raw).empty() || raw[0] == '#') continue;
    if (const size_t bad = find_invalid_utf8(raw); bad != std::string_view::npos)
      fail("{}:{}: invalid UTF-8 at byte {} of the line", file, line, bad);
    std::vector<std::string> cells = split(raw, '\t');
    if (!header_seen) {
      if (cells != columns)
        fail("{}:{}: header must be '{}' (tab-separated), got '{}'", file, line,
             join(columns, "<TAB>"), join(cells, "<TAB>"));
      header_seen = true;
      continue;
    }
    if (cells.size() != columns.size())
      fail("{}:{}: expected {} tab-separated columns ({}), got {}", file, line, columns.size(),
           join(columns, ", "), cells.size());
    for (size_t c = 0; c < cells.size(); ++c)
      if (cells[c].empty()) fail("{}:{}: column '{}' is empty", file, line, columns[c]);
    rows.push_back({line, std::move(cells)});
  }
  if (!header_seen) fail("{}: no header row (expected '{}')", file, join(columns, "<TAB>"));
  return rows;
}

// A word as the data must spell it: one token, canonical case ("I" or lower case).
void check_word(const std::string& file, int line, const std::string& word) {
  if (word.find_first_of(" \t.") != std::string::npos || word == "<bos>")
    fail("{}:{}: '{}' is not a single word (no spaces, no '.', not <bos>)", file, line, word);
  if (word != "I" && fold_case(word) != word)
    fail("{}:{}: '{}' must be lower case (only \"I\" is capitalized)", file, line, word);
}

Lang parse_lang(const std::string& file, int line, const std::string& text) {
  if (text == "en") return Lang::En;
  if (text == "es") return Lang::Es;
  fail("{}:{}: unknown language '{}' (expected en or es)", file, line, text);
}

// person is 0..5; `any` (for function words) also accepts "*", returned as -1.
int parse_person(const std::string& file, int line, const std::string& text, bool any) {
  if (any && text == "*") return -1;
  int value = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value >= kPersons)
    fail("{}:{}: bad person '{}' (expected 0..5 = 1sg 2sg 3sg 1pl 2pl 3pl{})", file, line, text,
         any ? ", or *" : "");
  return value;
}

Tense parse_tense(const std::string& file, int line, const std::string& text) {
  for (const TenseInfo& info : kTenses)
    if (text == info.name) return info.tense;
  std::vector<std::string> known;
  for (const TenseInfo& info : kTenses) known.push_back(info.name);
  fail("{}:{}: unknown tense '{}' (known: {})", file, line, text, join(known, ", "));
}

}  // namespace

const char* to_string(Lang lang) { return lang == Lang::En ? "en" : "es"; }
const char* to_string(Tense tense) { return kTenses.at(tense_index(tense)).name; }
Lang language_of(Tense tense) { return kTenses.at(tense_index(tense)).lang; }

struct Grammar::Impl {
  std::array<std::vector<Pronoun>, 2> pronouns;
  std::array<std::vector<Verb>, 2> verbs;
  std::array<std::vector<std::vector<std::string>>, kTenseCount> adverbials;
  std::map<std::pair<Lang, std::string>, std::array<std::string, kPersons>> function_words;
  std::array<std::vector<std::string>, 2> function_list;  // file order, each word once

  std::vector<std::string> vocabulary;
  std::unordered_map<std::string, int> word_id;
  // The recognizer: a trie over word ids of every distinct sentence. Node 0 is the root;
  // edge (node, word) -> child is keyed as node << 32 | word. A node reached by "." ends a
  // sentence (every sentence ends with "." and no sentence has it elsewhere) and records in
  // `ends` the tenses (bit i = Tense i) that render to exactly those words.
  std::unordered_map<uint64_t, int> edges;
  std::vector<uint16_t> ends;  // per node
  uint64_t sentence_count = 0;

  const std::string& function_word(Lang lang, const char* role, int person) const {
    return function_words.at({lang, role})[static_cast<size_t>(person)];
  }
  void load(const std::map<std::string, std::string>& files);
  void build_recognizer();
  std::vector<std::string> render_words(const SentenceSpec& spec) const;
  int step(int node, const std::string& word) const {
    const auto id = word_id.find(word);
    if (id == word_id.end()) return -1;
    const auto child =
        edges.find(static_cast<uint64_t>(node) << 32 | static_cast<uint32_t>(id->second));
    return child == edges.end() ? -1 : child->second;
  }
  // Walks whole sentences; returns the node reached (0 after a complete sentence), or -1.
  int walk(std::span<const std::string> words) const {
    int node = 0;
    for (const std::string& word : words) {
      node = step(node, word);
      if (node < 0) return -1;
      if (ends[static_cast<size_t>(node)]) node = 0;
    }
    return node;
  }
};

void Grammar::Impl::load(const std::map<std::string, std::string>& files) {
  const std::vector<std::string> expected = {"adverbials.tsv", "function_words.tsv", "pronouns.tsv",
                                             "verbs_en.tsv", "verbs_es.tsv"};
  for (const auto& [name, text] : files)
    if (std::find(expected.begin(), expected.end(), name) == expected.end())
      fail("corpus file '{}' is not one the grammar reads (expected {})", name,
           join(expected, ", "));
  const auto file = [&](const std::string& name) -> const std::string& {
    const auto it = files.find(name);
    if (it == files.end()) fail("corpus file '{}' is missing", name);
    return it->second;
  };

  std::set<std::pair<Lang, std::string>> seen_pronouns;
  for (const Row& row : read_tsv("pronouns.tsv", file("pronouns.tsv"), kPronounColumns)) {
    const Lang lang = parse_lang("pronouns.tsv", row.line, row.cells[0]);
    check_word("pronouns.tsv", row.line, row.cells[1]);
    if (!seen_pronouns.insert({lang, row.cells[1]}).second)
      fail("pronouns.tsv:{}: pronoun '{}' listed twice", row.line, row.cells[1]);
    pronouns[lang_index(lang)].push_back(
        {row.cells[1], parse_person("pronouns.tsv", row.line, row.cells[2], false)});
  }

  for (const Row& row : read_tsv("adverbials.tsv", file("adverbials.tsv"), kAdverbialColumns)) {
    std::vector<std::string> words;
    for (const std::string& word : split(row.cells[1], ' ')) {
      if (word.empty()) continue;  // repeated spaces
      check_word("adverbials.tsv", row.line, word);
      words.push_back(word);
    }
    const std::vector<std::string> names = split(row.cells[0], ',');
    for (const std::string& name : names) {
      const Tense tense = parse_tense("adverbials.tsv", row.line, name);
      // An adverbial belongs to one language; tagging both is a slip of the pen.
      if (language_of(tense) != language_of(parse_tense("adverbials.tsv", row.line, names[0])))
        fail("adverbials.tsv:{}: '{}' mixes tenses of en and es", row.line, row.cells[1]);
      auto& list = adverbials[tense_index(tense)];
      if (std::find(list.begin(), list.end(), words) != list.end())
        fail("adverbials.tsv:{}: '{}' is already listed for {}", row.line, row.cells[1], name);
      list.push_back(words);
    }
  }

  for (const Row& row :
       read_tsv("function_words.tsv", file("function_words.tsv"), kFunctionColumns)) {
    const Lang lang = parse_lang("function_words.tsv", row.line, row.cells[0]);
    const auto& roles = kFunctionRoles.at(to_string(lang));
    if (std::find(roles.begin(), roles.end(), row.cells[1]) == roles.end())
      fail("function_words.tsv:{}: unknown role '{}' for {} (expected {})", row.line, row.cells[1],
           to_string(lang), join(roles, ", "));
    const int person = parse_person("function_words.tsv", row.line, row.cells[2], true);
    check_word("function_words.tsv", row.line, row.cells[3]);
    auto& slots = function_words[{lang, row.cells[1]}];
    for (int p = 0; p < kPersons; ++p) {
      if (person >= 0 && p != person) continue;
      if (!slots[static_cast<size_t>(p)].empty())
        fail("function_words.tsv:{}: {} role '{}' already has a word for person {}", row.line,
             to_string(lang), row.cells[1], p);
      slots[static_cast<size_t>(p)] = row.cells[3];
    }
    auto& list = function_list[lang_index(lang)];
    if (std::find(list.begin(), list.end(), row.cells[3]) == list.end())
      list.push_back(row.cells[3]);
  }
  for (const auto& [lang, roles] : kFunctionRoles)
    for (const std::string& role : roles) {
      const auto& slots = function_words[{lang == "en" ? Lang::En : Lang::Es, role}];
      for (int p = 0; p < kPersons; ++p)
        if (slots[static_cast<size_t>(p)].empty())
          fail("function_words.tsv: {} role '{}' has no word for person {} ({})", lang, role, p,
               kPersonNames[static_cast<size_t>(p)]);
    }

  std::set<std::string> lemmas;
  for (const Row& row : read_tsv("verbs_en.tsv", file("verbs_en.tsv"), kEnVerbColumns)) {
    Verb verb{row.cells[0], {}};
    for (size_t c = 0; c < kEnVerbColumns.size(); ++c) {
      check_word("verbs_en.tsv", row.line, row.cells[c]);
      verb.forms[kEnVerbColumns[c]] = row.cells[c];
    }
    if (!lemmas.insert("en:" + verb.lemma).second)
      fail("verbs_en.tsv:{}: verb '{}' listed twice", row.line, verb.lemma);
    verbs[lang_index(Lang::En)].push_back(std::move(verb));
  }
  for (const Row& row : read_tsv("verbs_es.tsv", file("verbs_es.tsv"), kEsVerbColumns)) {
    Verb verb{row.cells[0], {}};
    for (size_t c = 0; c < kEsVerbColumns.size(); ++c) {
      if (c < kEsFiniteColumn) {
        check_word("verbs_es.tsv", row.line, row.cells[c]);
        verb.forms[kEsVerbColumns[c]] = row.cells[c];
        continue;
      }
      const std::vector<std::string> forms = split(row.cells[c], ',');
      if (forms.size() != kPersons)
        fail(
            "verbs_es.tsv:{}: column '{}' needs 6 comma-separated forms (1sg 2sg 3sg 1pl 2pl "
            "3pl), got {}",
            row.line, kEsVerbColumns[c], forms.size());
      for (int p = 0; p < kPersons; ++p) {
        const std::string& form = forms[static_cast<size_t>(p)];
        if (form.empty())
          fail("verbs_es.tsv:{}: column '{}' is missing the {} form", row.line, kEsVerbColumns[c],
               kPersonNames[static_cast<size_t>(p)]);
        check_word("verbs_es.tsv", row.line, form);
        verb.forms[kEsVerbColumns[c] + "." + kPersonNames[static_cast<size_t>(p)]] = form;
      }
    }
    if (!lemmas.insert("es:" + verb.lemma).second)
      fail("verbs_es.tsv:{}: verb '{}' listed twice", row.line, verb.lemma);
    verbs[lang_index(Lang::Es)].push_back(std::move(verb));
  }

  for (Lang lang : {Lang::En, Lang::Es}) {
    if (pronouns[lang_index(lang)].empty()) fail("pronouns.tsv: no {} pronouns", to_string(lang));
    if (verbs[lang_index(lang)].empty()) fail("verbs_{}.tsv: no verbs", to_string(lang));
  }
}

std::vector<std::string> Grammar::Impl::render_words(const SentenceSpec& spec) const {
  const size_t t = tense_index(spec.tense);
  if (t >= kTenseCount) fail("render: tense {} out of range", t);
  const Lang lang = language_of(spec.tense);
  const auto& advs = adverbials[t];
  const auto& prons = pronouns[lang_index(lang)];
  const auto& vs = verbs[lang_index(lang)];
  if (spec.adverbial < -1 || spec.adverbial >= static_cast<int>(advs.size()))
    fail("render: adverbial {} out of range for {} ({} adverbials)", spec.adverbial,
         to_string(spec.tense), advs.size());
  if (spec.pronoun < 0 || spec.pronoun >= static_cast<int>(prons.size()))
    fail("render: pronoun {} out of range for {} ({} pronouns)", spec.pronoun, to_string(lang),
         prons.size());
  if (spec.verb < 0 || spec.verb >= static_cast<int>(vs.size()))
    fail("render: verb {} out of range for {} ({} verbs)", spec.verb, to_string(lang), vs.size());

  const Pronoun& pronoun = prons[static_cast<size_t>(spec.pronoun)];
  const int p = pronoun.person;
  const auto& forms = vs[static_cast<size_t>(spec.verb)].forms;
  const auto form = [&](const std::string& name) -> const std::string& { return forms.at(name); };
  const auto finite = [&](const char* tense) -> const std::string& {
    return form(std::string(tense) + "." + kPersonNames[static_cast<size_t>(p)]);
  };
  const std::vector<std::string> none;
  const std::vector<std::string>& adverbial =
      spec.adverbial < 0 ? none : advs[static_cast<size_t>(spec.adverbial)];

  // English present-perfect adverbials sit between have/has and the participle
  // ("I have already worked ."); every other adverbial opens the sentence.
  std::vector<std::string> words;
  if (spec.tense != Tense::PresentPerfect) words = adverbial;
  words.push_back(pronoun.word);
  const auto add = [&](const std::string& word) { words.push_back(word); };
  switch (spec.tense) {
    case Tense::PastSimple:
      add(form("past"));
      break;
    case Tense::PresentSimple:
      add(form(p == 2 ? "3sg" : "base"));
      break;
    case Tense::PresentContinuous:
      add(function_word(lang, "be", p));
      add(form("ing"));
      break;
    case Tense::WillFuture:
      add(function_word(lang, "will", p));
      add(form("base"));
      break;
    case Tense::GoingToFuture:
      add(function_word(lang, "be", p));
      add(function_word(lang, "going", p));
      add(function_word(lang, "to", p));
      add(form("base"));
      break;
    case Tense::PresentPerfect:
      add(function_word(lang, "have", p));
      words.insert(words.end(), adverbial.begin(), adverbial.end());
      add(form("past_participle"));
      break;
    case Tense::Presente:
      add(finite("presente"));
      break;
    case Tense::Preterito:
      add(finite("preterito"));
      break;
    case Tense::Imperfecto:
      add(finite("imperfecto"));
      break;
    case Tense::Futuro:
      add(finite("futuro"));
      break;
    case Tense::Perfecto:
      add(function_word(lang, "haber", p));
      add(form("participio"));
      break;
    case Tense::IrA:
      add(function_word(lang, "ir", p));
      add(function_word(lang, "a", p));
      add(form("infinitivo"));
      break;
  }
  add(".");
  return words;
}

void Grammar::Impl::build_recognizer() {
  // Enumerate every spec once: the words seen make the vocabulary, the word lists the trie.
  std::vector<std::pair<Tense, std::vector<std::string>>> all;
  std::set<std::string> words;
  for (const TenseInfo& info : kTenses) {
    const int n_adv = static_cast<int>(adverbials[tense_index(info.tense)].size());
    const int n_pron = static_cast<int>(pronouns[lang_index(info.lang)].size());
    const int n_verb = static_cast<int>(verbs[lang_index(info.lang)].size());
    for (int a = -1; a < n_adv; ++a)
      for (int p = 0; p < n_pron; ++p)
        for (int v = 0; v < n_verb; ++v) {
          all.emplace_back(info.tense, render_words({info.tense, a, p, v}));
          words.insert(all.back().second.begin(), all.back().second.end());
        }
  }
  // Vocabulary order: "<bos>", ".", then every other word sorted by its UTF-8 bytes
  // (std::string compares as unsigned char), so "I" precedes the lower-case words.
  words.erase(".");
  vocabulary = {"<bos>", "."};
  vocabulary.insert(vocabulary.end(), words.begin(), words.end());
  for (size_t id = 0; id < vocabulary.size(); ++id)
    word_id.emplace(vocabulary[id], static_cast<int>(id));
  Tokenizer check(vocabulary);  // throws if two words differ only in case

  ends.assign(1, 0);
  for (const auto& [tense, sentence] : all) {
    int node = 0;
    for (const std::string& word : sentence) {
      const uint64_t key =
          static_cast<uint64_t>(node) << 32 | static_cast<uint32_t>(word_id.at(word));
      const auto [it, inserted] = edges.emplace(key, static_cast<int>(ends.size()));
      if (inserted) ends.push_back(0);
      node = it->second;
    }
    if (!ends[static_cast<size_t>(node)]) ++sentence_count;
    ends[static_cast<size_t>(node)] |= static_cast<uint16_t>(1u << tense_index(tense));
  }
}

const Grammar& Grammar::builtin() {
  static const Grammar grammar = from_files(embedded_corpus_files());
  return grammar;
}

Grammar Grammar::from_files(const std::map<std::string, std::string>& files) {
  auto impl = std::make_shared<Impl>();
  impl->load(files);
  impl->build_recognizer();
  Grammar grammar;
  grammar.impl_ = std::move(impl);
  return grammar;
}

const std::vector<std::string>& Grammar::vocabulary() const { return impl_->vocabulary; }

std::vector<Tense> Grammar::tenses(Lang lang) const {
  std::vector<Tense> out;
  for (const TenseInfo& info : kTenses)
    if (info.lang == lang) out.push_back(info.tense);
  return out;
}

const std::vector<std::vector<std::string>>& Grammar::adverbials(Tense tense) const {
  return impl_->adverbials.at(tense_index(tense));
}

const std::vector<Pronoun>& Grammar::pronouns(Lang lang) const {
  return impl_->pronouns.at(lang_index(lang));
}

const std::vector<Verb>& Grammar::verbs(Lang lang) const {
  return impl_->verbs.at(lang_index(lang));
}

std::vector<std::string> Grammar::function_words(Lang lang) const {
  return impl_->function_list.at(lang_index(lang));
}

Sentence Grammar::render(const SentenceSpec& spec) const {
  return Sentence{spec, impl_->render_words(spec)};
}

SentenceSpec Grammar::sample_spec(Rng& rng) const {
  // Tense first (every tense equally likely, so both languages get half), then each slot
  // uniformly; "no adverbial" is one more choice beside the tense's adverbials.
  SentenceSpec spec;
  spec.tense = kTenses[rng.below(kTenseCount)].tense;
  const Lang lang = language_of(spec.tense);
  spec.adverbial =
      static_cast<int>(rng.below(static_cast<uint32_t>(adverbials(spec.tense).size() + 1))) - 1;
  spec.pronoun = static_cast<int>(rng.below(static_cast<uint32_t>(pronouns(lang).size())));
  spec.verb = static_cast<int>(rng.below(static_cast<uint32_t>(verbs(lang).size())));
  return spec;
}

bool Grammar::is_complete(std::span<const std::string> words) const {
  return !words.empty() && impl_->walk(words) == 0;
}

bool Grammar::is_prefix(std::span<const std::string> words) const {
  return impl_->walk(words) >= 0;
}

std::vector<Tense> Grammar::parse_tenses(std::span<const std::string> sentence) const {
  int node = 0;
  for (size_t i = 0; i < sentence.size(); ++i) {
    node = impl_->step(node, sentence[i]);
    if (node < 0) return {};
    if (impl_->ends[static_cast<size_t>(node)] && i + 1 != sentence.size()) return {};
  }
  std::vector<Tense> out;
  const uint16_t mask = sentence.empty() ? 0 : impl_->ends[static_cast<size_t>(node)];
  for (const TenseInfo& info : kTenses)
    if (mask & (1u << tense_index(info.tense))) out.push_back(info.tense);
  return out;
}

uint64_t Grammar::count_sentences() const { return impl_->sentence_count; }

}  // namespace miniinfer
