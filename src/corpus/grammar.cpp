// The §A13 grammar: loads and validates corpus/*.tsv, renders and samples SentenceSpecs, and
// recognizes sentences with a trie of every distinct sentence (built once by enumerating the
// whole, finite grammar), so is_prefix is one hash lookup per word. Frames, agreement and
// adverbial positions live in rendering only: the recognizer accepts what rendering produces.
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
constexpr std::array<const char*, kPersons> kPersonNames = {"1sg", "2sg", "3sg", "1pl", "2pl", "3pl"};

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
const std::vector<std::string> kPronounColumns = {"lang", "word", "person", "gender"};
const std::vector<std::string> kAdverbialColumns = {"tenses", "position", "adverbial"};
const std::vector<std::string> kFunctionColumns = {"lang", "role", "person", "word"};
const std::vector<std::string> kComplementColumns = {"lang", "class", "phrase"};
// The form columns come first; then the frame (and, in English, the aspect).
const std::vector<std::string> kEnVerbColumns = {"base", "3sg",   "past",  "past_participle",
                                                 "ing",  "frame", "aspect"};
constexpr size_t kEnFormColumns = 5;
const std::vector<std::string> kEsVerbColumns = {"infinitivo", "participio", "gerundio", "presente",
                                                 "preterito",  "imperfecto", "futuro",   "frame"};
constexpr size_t kEsFiniteColumn = 3;  // first of the per-person columns
constexpr size_t kEsFormColumns = 7;
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
        fail("{}:{}: header must be '{}' (tab-separated), got '{}'", file, line, join(columns, "<TAB>"),
             join(cells, "<TAB>"));
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

// A phrase and, if it agrees with the subject, its other forms: 1 form (invariant), 2
// (singular|plural) or 4 (masculine singular|feminine singular|masculine plural|feminine
// plural), as the data write them: "de niño|de niña|de niños|de niñas".
struct Phrase {
  std::vector<std::vector<std::string>> forms;
  const std::vector<std::string>& canonical() const { return forms.front(); }
  const std::vector<std::string>& agreeing(int person, char gender) const {
    const size_t plural = person >= 3 ? 1 : 0;
    if (forms.size() == 2) return forms[plural];
    if (forms.size() == 4) return forms[2 * plural + (gender == 'f' ? 1 : 0)];
    return forms.front();
  }
};

Phrase parse_phrase(const std::string& file, int line, const std::string& text) {
  Phrase phrase;
  for (const std::string& form : split(text, '|')) {
    std::vector<std::string> words;
    for (const std::string& word : split(form, ' ')) {
      if (word.empty()) continue;  // repeated spaces
      check_word(file, line, word);
      words.push_back(word);
    }
    if (words.empty()) fail("{}:{}: '{}' has an empty form", file, line, text);
    phrase.forms.push_back(std::move(words));
  }
  const size_t n = phrase.forms.size();
  if (n != 1 && n != 2 && n != 4)
    fail(
        "{}:{}: '{}' has {} forms; a phrase that agrees has 2 (singular|plural) or 4 "
        "(m.sg|f.sg|m.pl|f.pl)",
        file, line, text, n);
  return phrase;
}

Position parse_position(const std::string& file, int line, const std::string& text) {
  if (text == "front") return Position::Front;
  if (text == "after-subject") return Position::AfterSubject;
  if (text == "after-auxiliary") return Position::AfterAuxiliary;
  fail("{}:{}: unknown position '{}' (expected front, after-subject or after-auxiliary)", file, line, text);
}

Frame parse_frame(const std::string& file, int line, const std::string& text) {
  if (text == "intransitive") return {};
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  Frame frame;
  if (kind == "transitive" || kind == "transitive?" || kind == "copular") {
    frame.kind = kind == "copular" ? Frame::Kind::Copular : Frame::Kind::Transitive;
    frame.optional = kind == "transitive?";
    frame.complement = colon == std::string::npos ? "" : text.substr(colon + 1);
  }
  if (frame.complement.empty())
    fail(
        "{}:{}: bad frame '{}' (expected intransitive, transitive:CLASS, transitive?:CLASS or "
        "copular:CLASS)",
        file, line, text);
  return frame;
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
  struct Adverbial {
    Phrase phrase;
    Position position;
  };
  std::array<std::vector<Pronoun>, 2> pronouns;
  std::array<std::vector<Verb>, 2> verbs;
  std::array<std::vector<Adverbial>, kTenseCount> adverbials;
  std::array<std::vector<std::vector<std::string>>, kTenseCount> adverbial_words;  // canonical
  std::map<std::pair<Lang, std::string>, std::vector<Phrase>> complements;
  std::map<std::pair<Lang, std::string>, std::array<std::string, kPersons>> function_words;
  std::array<std::vector<std::string>, 2> function_list;    // file order, each word once
  std::array<std::vector<int>, kTenseCount> allowed_verbs;  // verbs each tense can take

  std::vector<std::string> vocabulary;
  std::array<std::vector<std::string>, 2> words_by_lang;
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
  const std::vector<Phrase>& complement_class(Lang lang, const Verb& verb) const {
    static const std::vector<Phrase> none;
    if (verb.frame.complement.empty()) return none;
    return complements.at({lang, verb.frame.complement});
  }
  int complement_choices(Lang lang, const Verb& verb) const {
    const int n = static_cast<int>(complement_class(lang, verb).size());
    return n == 0 ? 1 : verb.frame.optional ? n + 1 : n;
  }
  // The phrase SentenceSpec::complement picks, or nullptr for none.
  const Phrase* complement_of(Lang lang, const Verb& verb, int choice) const {
    const auto& phrases = complement_class(lang, verb);
    if (phrases.empty()) return nullptr;
    if (verb.frame.optional) return choice == 0 ? nullptr : &phrases[static_cast<size_t>(choice - 1)];
    return &phrases[static_cast<size_t>(choice)];
  }
  void load(const std::map<std::string, std::string>& files);
  void build_recognizer();
  std::string misfit(const SentenceSpec& spec) const;
  // `feminine`: give a pronoun that does not mark gender (yo, ustedes) the feminine form of an
  // adverbial that agrees in gender ("de niña yo ..."); rendering proper uses the masculine.
  Sentence render(const SentenceSpec& spec, bool feminine = false) const;
  std::vector<SentenceSpec> specs(Tense tense) const;
  std::vector<std::vector<std::string>> wordings(const SentenceSpec& spec) const {
    std::vector<std::vector<std::string>> out = {render(spec).words};
    const Lang lang = language_of(spec.tense);
    if (pronouns[lang_index(lang)][static_cast<size_t>(spec.pronoun)].gender == '-') {
      std::vector<std::string> feminine = render(spec, true).words;
      if (feminine != out.front()) out.push_back(std::move(feminine));
    }
    return out;
  }
  int step(int node, const std::string& word) const {
    const auto id = word_id.find(word);
    if (id == word_id.end()) return -1;
    const auto child = edges.find(static_cast<uint64_t>(node) << 32 | static_cast<uint32_t>(id->second));
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
  const std::vector<std::string> expected = {"adverbials.tsv", "complements.tsv", "function_words.tsv",
                                             "pronouns.tsv",   "verbs_en.tsv",    "verbs_es.tsv"};
  for (const auto& [name, text] : files)
    if (std::find(expected.begin(), expected.end(), name) == expected.end())
      fail("corpus file '{}' is not one the grammar reads (expected {})", name, join(expected, ", "));
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
    const std::string& gender = row.cells[3];
    if (gender != "m" && gender != "f" && gender != "-")
      fail("pronouns.tsv:{}: bad gender '{}' (expected m, f or - for unmarked)", row.line, gender);
    pronouns[lang_index(lang)].push_back(
        {row.cells[1], parse_person("pronouns.tsv", row.line, row.cells[2], false), gender[0]});
  }

  for (const Row& row : read_tsv("adverbials.tsv", file("adverbials.tsv"), kAdverbialColumns)) {
    const Position position = parse_position("adverbials.tsv", row.line, row.cells[1]);
    const Phrase phrase = parse_phrase("adverbials.tsv", row.line, row.cells[2]);
    const std::vector<std::string> names = split(row.cells[0], ',');
    for (const std::string& name : names) {
      const Tense tense = parse_tense("adverbials.tsv", row.line, name);
      // An adverbial belongs to one language; tagging both is a slip of the pen.
      if (language_of(tense) != language_of(parse_tense("adverbials.tsv", row.line, names[0])))
        fail("adverbials.tsv:{}: '{}' mixes tenses of en and es", row.line, row.cells[2]);
      auto& list = adverbial_words[tense_index(tense)];
      if (std::find(list.begin(), list.end(), phrase.canonical()) != list.end())
        fail("adverbials.tsv:{}: '{}' is already listed for {}", row.line, row.cells[2], name);
      list.push_back(phrase.canonical());
      adverbials[tense_index(tense)].push_back({phrase, position});
    }
  }

  for (const Row& row : read_tsv("function_words.tsv", file("function_words.tsv"), kFunctionColumns)) {
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
    if (std::find(list.begin(), list.end(), row.cells[3]) == list.end()) list.push_back(row.cells[3]);
  }
  for (const auto& [lang, roles] : kFunctionRoles)
    for (const std::string& role : roles) {
      const auto& slots = function_words[{lang == "en" ? Lang::En : Lang::Es, role}];
      for (int p = 0; p < kPersons; ++p)
        if (slots[static_cast<size_t>(p)].empty())
          fail("function_words.tsv: {} role '{}' has no word for person {} ({})", lang, role, p,
               kPersonNames[static_cast<size_t>(p)]);
    }

  std::map<std::pair<Lang, std::string>, int> class_line;  // first line of each class
  for (const Row& row : read_tsv("complements.tsv", file("complements.tsv"), kComplementColumns)) {
    const Lang lang = parse_lang("complements.tsv", row.line, row.cells[0]);
    const Phrase phrase = parse_phrase("complements.tsv", row.line, row.cells[2]);
    auto& list = complements[{lang, row.cells[1]}];
    for (const Phrase& other : list)
      if (other.forms == phrase.forms)
        fail("complements.tsv:{}: '{}' is already listed for {}", row.line, row.cells[2], row.cells[1]);
    list.push_back(phrase);
    class_line.emplace(std::make_pair(lang, row.cells[1]), row.line);
  }

  std::set<std::pair<Lang, std::string>> used_classes;
  // The frame of a verb on `line`: its class must exist in the verb's language.
  const auto read_frame = [&](const char* file, int line, Lang lang, const std::string& text) {
    Frame frame = parse_frame(file, line, text);
    if (!complements.count({lang, frame.complement}) && !frame.complement.empty())
      fail("{}:{}: complement class '{}' is not in complements.tsv for {}", file, line, frame.complement,
           to_string(lang));
    used_classes.insert({lang, frame.complement});
    return frame;
  };

  std::set<std::string> lemmas;
  for (const Row& row : read_tsv("verbs_en.tsv", file("verbs_en.tsv"), kEnVerbColumns)) {
    Verb verb{row.cells[0], {}, {}, false};
    for (size_t c = 0; c < kEnFormColumns; ++c) {
      check_word("verbs_en.tsv", row.line, row.cells[c]);
      verb.forms[kEnVerbColumns[c]] = row.cells[c];
    }
    verb.frame = read_frame("verbs_en.tsv", row.line, Lang::En, row.cells[kEnFormColumns]);
    const std::string& aspect = row.cells[kEnFormColumns + 1];
    if (aspect != "stative" && aspect != "dynamic")
      fail(
          "verbs_en.tsv:{}: bad aspect '{}' (expected dynamic, or stative for a verb with no "
          "continuous form)",
          row.line, aspect);
    verb.stative = aspect == "stative";
    if (!lemmas.insert("en:" + verb.lemma).second)
      fail("verbs_en.tsv:{}: verb '{}' listed twice", row.line, verb.lemma);
    verbs[lang_index(Lang::En)].push_back(std::move(verb));
  }
  for (const Row& row : read_tsv("verbs_es.tsv", file("verbs_es.tsv"), kEsVerbColumns)) {
    Verb verb{row.cells[0], {}, {}, false};
    for (size_t c = 0; c < kEsFormColumns; ++c) {
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
    verb.frame = read_frame("verbs_es.tsv", row.line, Lang::Es, row.cells[kEsFormColumns]);
    if (!lemmas.insert("es:" + verb.lemma).second)
      fail("verbs_es.tsv:{}: verb '{}' listed twice", row.line, verb.lemma);
    verbs[lang_index(Lang::Es)].push_back(std::move(verb));
  }
  for (const auto& [key, line] : class_line)
    if (!used_classes.count(key))
      fail("complements.tsv:{}: class '{}' is used by no {} verb's frame", line, key.second,
           to_string(key.first));

  for (Lang lang : {Lang::En, Lang::Es}) {
    if (pronouns[lang_index(lang)].empty()) fail("pronouns.tsv: no {} pronouns", to_string(lang));
    if (verbs[lang_index(lang)].empty()) fail("verbs_{}.tsv: no verbs", to_string(lang));
  }
  for (const TenseInfo& info : kTenses) {
    const auto& vs = verbs[lang_index(info.lang)];
    for (size_t v = 0; v < vs.size(); ++v)
      if (!(vs[v].stative && info.tense == Tense::PresentContinuous))
        allowed_verbs[tense_index(info.tense)].push_back(static_cast<int>(v));
    if (allowed_verbs[tense_index(info.tense)].empty())
      fail("verbs_{}.tsv: every verb is stative, so {} has none", to_string(info.lang), info.name);
  }
  if (verbs[lang_index(Lang::En)].front().stative)
    fail("verbs_en.tsv: the first verb (the canonical one) must not be stative");
}

std::string Grammar::Impl::misfit(const SentenceSpec& spec) const {
  const size_t t = tense_index(spec.tense);
  if (t >= kTenseCount) return fmt::format("tense {} out of range", t);
  const Lang lang = language_of(spec.tense);
  const auto& advs = adverbials[t];
  const auto& prons = pronouns[lang_index(lang)];
  const auto& vs = verbs[lang_index(lang)];
  if (spec.adverbial < -1 || spec.adverbial >= static_cast<int>(advs.size()))
    return fmt::format("adverbial {} out of range for {} ({} adverbials)", spec.adverbial,
                       to_string(spec.tense), advs.size());
  if (spec.pronoun < 0 || spec.pronoun >= static_cast<int>(prons.size()))
    return fmt::format("pronoun {} out of range for {} ({} pronouns)", spec.pronoun, to_string(lang),
                       prons.size());
  if (spec.verb < 0 || spec.verb >= static_cast<int>(vs.size()))
    return fmt::format("verb {} out of range for {} ({} verbs)", spec.verb, to_string(lang), vs.size());
  const Verb& verb = vs[static_cast<size_t>(spec.verb)];
  const int choices = complement_choices(lang, verb);
  if (spec.complement < 0 || spec.complement >= choices)
    return fmt::format("complement {} out of range for '{}' ({} choices)", spec.complement, verb.lemma,
                       choices);
  if (verb.stative && spec.tense == Tense::PresentContinuous)
    return fmt::format("'{}' is stative and has no {}", verb.lemma, to_string(spec.tense));
  return "";
}

Sentence Grammar::Impl::render(const SentenceSpec& spec, bool feminine) const {
  if (const std::string why = misfit(spec); !why.empty()) fail("render: {}", why);
  const Lang lang = language_of(spec.tense);
  const Pronoun& pronoun = pronouns[lang_index(lang)][static_cast<size_t>(spec.pronoun)];
  const int p = pronoun.person;
  const char gender = pronoun.gender == '-' && feminine ? 'f' : pronoun.gender;
  const Verb& verb = verbs[lang_index(lang)][static_cast<size_t>(spec.verb)];
  const auto form = [&](const std::string& name) -> const std::string& { return verb.forms.at(name); };
  const auto finite = [&](const char* tense) -> const std::string& {
    return form(std::string(tense) + "." + kPersonNames[static_cast<size_t>(p)]);
  };

  // The verb phrase, and how many of its words are the auxiliary an after-auxiliary adverbial
  // follows ("have" in "have already worked"; 0 when the tense has no auxiliary).
  std::vector<std::string> phrase;
  size_t auxiliary = 0;
  const auto add = [&](const std::string& word) { phrase.push_back(word); };
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
      auxiliary = 1;
      break;
    case Tense::WillFuture:
      add(function_word(lang, "will", p));
      add(form("base"));
      auxiliary = 1;
      break;
    case Tense::GoingToFuture:
      add(function_word(lang, "be", p));
      add(function_word(lang, "going", p));
      add(function_word(lang, "to", p));
      add(form("base"));
      auxiliary = 1;
      break;
    case Tense::PresentPerfect:
      add(function_word(lang, "have", p));
      add(form("past_participle"));
      auxiliary = 1;
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
      auxiliary = 1;
      break;
    case Tense::IrA:
      add(function_word(lang, "ir", p));
      add(function_word(lang, "a", p));
      add(form("infinitivo"));
      auxiliary = 1;
      break;
  }

  Sentence out{spec, {}, 0};
  std::vector<std::string>& words = out.words;
  const auto append = [&](const std::vector<std::string>& more) {
    words.insert(words.end(), more.begin(), more.end());
  };
  const Adverbial* adverbial =
      spec.adverbial < 0 ? nullptr
                         : &adverbials[tense_index(spec.tense)][static_cast<size_t>(spec.adverbial)];
  const std::vector<std::string> none;
  const std::vector<std::string>& adverbial_text = adverbial ? adverbial->phrase.agreeing(p, gender) : none;
  const Position position = adverbial ? adverbial->position : Position::Front;
  if (position == Position::Front) append(adverbial_text);
  out.subject = words.size();
  words.push_back(pronoun.word);
  if (position == Position::AfterSubject) append(adverbial_text);
  words.insert(words.end(), phrase.begin(), phrase.begin() + static_cast<long>(auxiliary));
  if (position == Position::AfterAuxiliary) append(adverbial_text);
  words.insert(words.end(), phrase.begin() + static_cast<long>(auxiliary), phrase.end());
  if (const Phrase* complement = complement_of(lang, verb, spec.complement))
    append(complement->agreeing(p, gender));
  words.push_back(".");
  return out;
}

std::vector<SentenceSpec> Grammar::Impl::specs(Tense tense) const {
  std::vector<SentenceSpec> out;
  const Lang lang = language_of(tense);
  const int n_adv = static_cast<int>(adverbials[tense_index(tense)].size());
  const int n_pron = static_cast<int>(pronouns[lang_index(lang)].size());
  for (int a = -1; a < n_adv; ++a)
    for (int p = 0; p < n_pron; ++p)
      for (int v : allowed_verbs[tense_index(tense)]) {
        const int n_comp = complement_choices(lang, verbs[lang_index(lang)][static_cast<size_t>(v)]);
        for (int c = 0; c < n_comp; ++c) out.push_back({tense, a, p, v, c});
      }
  return out;
}

void Grammar::Impl::build_recognizer() {
  // Enumerate every spec once: the words seen make the vocabulary, the word lists the trie.
  // A pronoun that does not mark gender is also rendered with the feminine form of a phrase
  // that agrees in gender: "de niña yo hablaba ." is as good as "de niño yo hablaba .".
  std::vector<std::pair<Tense, std::vector<std::string>>> all;
  std::array<std::set<std::string>, 2> lang_words;
  for (const TenseInfo& info : kTenses)
    for (const SentenceSpec& spec : specs(info.tense)) {
      for (auto& sentence : wordings(spec)) {
        lang_words[lang_index(info.lang)].insert(sentence.begin(), sentence.end());
        all.emplace_back(info.tense, std::move(sentence));
      }
    }
  // Vocabulary order: "<bos>", ".", then every other word sorted by its UTF-8 bytes
  // (std::string compares as unsigned char), so "I" precedes the lower-case words.
  std::set<std::string> words;
  for (auto& set : lang_words) {
    set.erase(".");
    words.insert(set.begin(), set.end());
  }
  for (Lang lang : {Lang::En, Lang::Es})
    words_by_lang[lang_index(lang)].assign(lang_words[lang_index(lang)].begin(),
                                           lang_words[lang_index(lang)].end());
  vocabulary = {"<bos>", "."};
  vocabulary.insert(vocabulary.end(), words.begin(), words.end());
  for (size_t id = 0; id < vocabulary.size(); ++id) word_id.emplace(vocabulary[id], static_cast<int>(id));
  Tokenizer check(vocabulary);  // throws if two words differ only in case

  ends.assign(1, 0);
  for (const auto& [tense, sentence] : all) {
    int node = 0;
    for (const std::string& word : sentence) {
      const uint64_t key = static_cast<uint64_t>(node) << 32 | static_cast<uint32_t>(word_id.at(word));
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
  return impl_->adverbial_words.at(tense_index(tense));
}

Position Grammar::adverbial_position(Tense tense, int adverbial) const {
  return impl_->adverbials.at(tense_index(tense)).at(static_cast<size_t>(adverbial)).position;
}

const std::vector<Pronoun>& Grammar::pronouns(Lang lang) const {
  return impl_->pronouns.at(lang_index(lang));
}

const std::vector<Verb>& Grammar::verbs(Lang lang) const { return impl_->verbs.at(lang_index(lang)); }

std::vector<std::string> Grammar::function_words(Lang lang) const {
  return impl_->function_list.at(lang_index(lang));
}

std::vector<std::vector<std::string>> Grammar::complements(Lang lang, int verb) const {
  std::vector<std::vector<std::string>> out;
  for (const Phrase& phrase : impl_->complement_class(lang, verbs(lang).at(static_cast<size_t>(verb))))
    out.push_back(phrase.canonical());
  return out;
}

int Grammar::complement_choices(Lang lang, int verb) const {
  return impl_->complement_choices(lang, verbs(lang).at(static_cast<size_t>(verb)));
}

bool Grammar::allows(Tense tense, int verb) const {
  const auto& allowed = impl_->allowed_verbs.at(tense_index(tense));
  return std::find(allowed.begin(), allowed.end(), verb) != allowed.end();
}

std::string Grammar::misfit(const SentenceSpec& spec) const { return impl_->misfit(spec); }

SentenceSpec Grammar::fit(SentenceSpec spec) const {
  const Lang lang = language_of(spec.tense);
  if (spec.verb < 0 || spec.verb >= static_cast<int>(verbs(lang).size())) return spec;  // render says why
  if (!allows(spec.tense, spec.verb)) spec.verb = 0;
  if (spec.complement < 0 || spec.complement >= complement_choices(lang, spec.verb)) spec.complement = 0;
  return spec;
}

Sentence Grammar::render(const SentenceSpec& spec) const { return impl_->render(spec); }

std::vector<std::vector<std::string>> Grammar::wordings(const SentenceSpec& spec) const {
  return impl_->wordings(spec);
}

SentenceSpec Grammar::sample_spec(Rng& rng) const {
  // Tense first (every tense equally likely, so both languages get half), then each slot
  // uniformly: "no adverbial" is one more choice beside the tense's adverbials, the verb is
  // one the tense allows, the complement one of the verb's choices.
  SentenceSpec spec;
  spec.tense = kTenses[rng.below(kTenseCount)].tense;
  const Lang lang = language_of(spec.tense);
  spec.adverbial = static_cast<int>(rng.below(static_cast<uint32_t>(adverbials(spec.tense).size() + 1))) - 1;
  spec.pronoun = static_cast<int>(rng.below(static_cast<uint32_t>(pronouns(lang).size())));
  const auto& allowed = impl_->allowed_verbs[tense_index(spec.tense)];
  spec.verb = allowed[rng.below(static_cast<uint32_t>(allowed.size()))];
  spec.complement = static_cast<int>(rng.below(static_cast<uint32_t>(complement_choices(lang, spec.verb))));
  return spec;
}

std::vector<SentenceSpec> Grammar::specs(Tense tense) const { return impl_->specs(tense); }

double Grammar::probability(const SentenceSpec& spec) const {
  if (!misfit(spec).empty()) return 0.0;
  const Lang lang = language_of(spec.tense);
  return 1.0 / static_cast<double>(kTenseCount) / static_cast<double>(adverbials(spec.tense).size() + 1) /
         static_cast<double>(pronouns(lang).size()) /
         static_cast<double>(impl_->allowed_verbs[tense_index(spec.tense)].size()) /
         static_cast<double>(complement_choices(lang, spec.verb));
}

const std::vector<std::string>& Grammar::words(Lang lang) const {
  return impl_->words_by_lang.at(lang_index(lang));
}

bool Grammar::is_complete(std::span<const std::string> words) const {
  return !words.empty() && impl_->walk(words) == 0;
}

bool Grammar::is_prefix(std::span<const std::string> words) const { return impl_->walk(words) >= 0; }

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
