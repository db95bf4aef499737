#include "generators/prompts.h"

#include <algorithm>
#include <ostream>
#include <set>

#include "base/rng.h"

namespace miniinfer::gen {
namespace {

const Grammar& grammar() { return Grammar::builtin(); }

std::vector<std::string> render_all(const std::vector<SentenceSpec>& sentences) {
  std::vector<std::string> words;
  for (const auto& spec : sentences) {
    auto s = grammar().render(spec).words;
    words.insert(words.end(), s.begin(), s.end());
  }
  return words;
}

int total_words(const std::vector<SentenceSpec>& sentences) {
  return static_cast<int>(render_all(sentences).size());
}

// Where shrinking sends a Spanish tense: its English counterpart ("English before Spanish").
Tense english_counterpart(Tense t) {
  switch (t) {
    case Tense::Presente:
      return Tense::PresentSimple;
    case Tense::Preterito:
      return Tense::PastSimple;
    case Tense::Imperfecto:
      return Tense::PastSimple;
    case Tense::Futuro:
      return Tense::WillFuture;
    case Tense::Perfecto:
      return Tense::PresentPerfect;
    case Tense::IrA:
      return Tense::GoingToFuture;
    default:
      return t;
  }
}

// A spec moved to another tense keeps what still fits and starts over where it does not
// (a stative verb has no continuous; another verb may take other complements).
SentenceSpec retense(SentenceSpec spec, Tense tense) {
  const bool same_language = language_of(tense) == language_of(spec.tense);
  spec.tense = tense;
  const int adverbials = static_cast<int>(grammar().adverbials(tense).size());
  if (spec.adverbial >= adverbials) spec.adverbial = adverbials > 0 ? 0 : -1;
  if (!same_language) {
    spec.pronoun = 0;
    spec.verb = 0;
    spec.complement = 0;
  }
  return grammar().fit(spec);
}

// True when the sentence opens with its adverbial, right before the pronoun: "Yesterday I".
bool adverbial_leads(const SentenceSpec& spec) {
  return spec.adverbial >= 0 && grammar().adverbial_position(spec.tense, spec.adverbial) == Position::Front;
}

Prompt draw_adverbial(Rng& rng) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    SentenceSpec spec = grammar().sample_spec(rng);
    const int n = static_cast<int>(grammar().adverbials(spec.tense).size());
    if (n == 0) continue;
    if (spec.adverbial < 0) spec.adverbial = static_cast<int>(rng.below(static_cast<uint32_t>(n)));
    if (!adverbial_leads(spec)) continue;
    // The adverbial (in the form that agrees with the pronoun) and the pronoun.
    const int length = static_cast<int>(grammar().render(spec).subject) + 1;
    return Prompt{Family::AdverbialPronoun, {spec}, length};
  }
  return Prompt{Family::AdverbialPronoun, {SentenceSpec{Tense::PastSimple, 0, 0, 0}}, 2};
}

// A strict prefix of one sentence (what a user types before finishing it): 4-8 words, and
// never reaching the sentence's end.
Prompt draw_partial(Rng& rng) {
  const int length = 4 + static_cast<int>(rng.below(5));
  SentenceSpec longest = grammar().sample_spec(rng);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const SentenceSpec spec = grammar().sample_spec(rng);
    if (total_words({spec}) > length) return Prompt{Family::Partial, {spec}, length};
    if (total_words({spec}) > total_words({longest})) longest = spec;
  }
  return Prompt{Family::Partial, {longest}, std::max(1, total_words({longest}) - 1)};
}

Prompt draw_mixed(Rng& rng) {
  const int length = 8 + static_cast<int>(rng.below(25));
  Prompt p{Family::MixedTense, {}, length};
  while (total_words(p.sentences) < length || p.sentences.size() < 2) {
    SentenceSpec spec = grammar().sample_spec(rng);
    // Each sentence changes tense from the one before: that is the stress on causal masking.
    if (!p.sentences.empty() && spec.tense == p.sentences.back().tense) continue;
    p.sentences.push_back(spec);
  }
  return p;
}

rc::Gen<Prompt> make_gen(Family family) {
  return rc::Gen<Prompt>([family](const rc::Random& random, int) {
    rc::Random r = random;
    Rng rng(r.next());
    Prompt p = family == Family::AdverbialPronoun ? draw_adverbial(rng)
               : family == Family::Partial        ? draw_partial(rng)
                                                  : draw_mixed(rng);
    return rc::shrinkable::shrinkRecur(
        p, [](const Prompt& q) { return rc::seq::fromContainer(shrink_prompt(q)); });
  });
}

// One of `values`, shrinking toward the first (rc::gen::element does not shrink).
template <typename T>
rc::Gen<T> genChoice(std::vector<T> values) {
  const int n = static_cast<int>(values.size());
  return rc::gen::map(rc::gen::inRange(0, n), [values](int i) { return values[static_cast<size_t>(i)]; });
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

}  // namespace

const char* to_string(Family family) {
  switch (family) {
    case Family::AdverbialPronoun:
      return "adverbial+pronoun";
    case Family::Partial:
      return "partial";
    case Family::MixedTense:
      return "mixed-tense";
  }
  return "?";
}

std::vector<std::string> Prompt::words() const {
  auto all = render_all(sentences);
  all.resize(std::min(all.size(), static_cast<size_t>(std::max(length, 0))));
  return all;
}

std::string Prompt::text() const { return join(words()); }

std::ostream& operator<<(std::ostream& os, const Prompt& p) {
  os << '"' << p.text() << "\" (" << to_string(p.family) << ", " << p.words().size() << " words:";
  for (const auto& s : p.sentences) os << ' ' << to_string(s.tense);
  return os << ')';
}

std::vector<Prompt> shrink_prompt(const Prompt& p) {
  const auto current = p.words();
  std::vector<Prompt> out;
  auto propose = [&](Prompt q) {
    q.length = std::min(q.length, total_words(q.sentences));
    if (q.length < 1) return;
    const auto words = q.words();
    if (words == current) return;
    for (const auto& seen : out)
      if (seen.words() == words) return;
    out.push_back(std::move(q));
  };
  // A structural cut (a sentence, an adverbial) either keeps the length, so later words move
  // in, or drops the cut words from the count, so the words after the cut stay the prompt's
  // end: "Yesterday I" becomes "I", not only "I worked". Both stay valid prefixes.
  const int all = total_words(p.sentences);
  auto propose_cut = [&](const Prompt& q) {
    propose(q);
    Prompt shorter = q;
    shorter.length = p.length - (all - total_words(q.sentences));
    if (shorter.length >= 1 && shorter.length < q.length) propose(shorter);
  };
  // Fewer sentences.
  if (p.sentences.size() > 1) {
    for (size_t i = 0; i < p.sentences.size(); ++i) {
      Prompt q = p;
      q.sentences.erase(q.sentences.begin() + static_cast<long>(i));
      propose_cut(q);
    }
  }
  // Shorter prefixes: 1, 2, half, one less.
  for (int len : {1, 2, p.length / 2, p.length - 1}) {
    if (len >= 1 && len < p.length) {
      Prompt q = p;
      q.length = len;
      propose(q);
    }
  }
  // Canonical words, English before Spanish, one field at a time.
  for (size_t i = 0; i < p.sentences.size(); ++i) {
    const SentenceSpec s = p.sentences[i];
    std::vector<SentenceSpec> variants;
    if (s.adverbial >= 0) variants.push_back({s.tense, -1, s.pronoun, s.verb, s.complement});
    if (english_counterpart(s.tense) != s.tense) variants.push_back(retense(s, english_counterpart(s.tense)));
    const Tense first = grammar().tenses(language_of(s.tense)).front();
    if (s.tense != first) variants.push_back(retense(s, first));
    if (s.pronoun > 0) variants.push_back({s.tense, s.adverbial, 0, s.verb, s.complement});
    if (s.verb > 0) variants.push_back({s.tense, s.adverbial, s.pronoun, 0, 0});
    if (s.adverbial > 0) variants.push_back({s.tense, 0, s.pronoun, s.verb, s.complement});
    if (s.complement > 0) variants.push_back({s.tense, s.adverbial, s.pronoun, s.verb, 0});
    for (const auto& v : variants) {
      if (!grammar().misfit(v).empty()) continue;
      Prompt q = p;
      q.sentences[i] = v;
      if (v.adverbial < 0 && s.adverbial >= 0)
        propose_cut(q);  // dropping the adverbial: also drop its words from the count
      else
        propose(q);
    }
  }
  return out;
}

std::vector<std::string> tags_of(const Prompt& p) {
  const auto words = p.words();
  size_t covered = 0;
  std::set<Tense> tenses;
  std::set<Lang> langs;
  for (const auto& s : p.sentences) {
    if (covered >= words.size()) break;
    tenses.insert(s.tense);
    langs.insert(language_of(s.tense));
    covered += grammar().render(s).words.size();
  }
  const size_t n = words.size();
  return {
      to_string(p.family),
      langs.size() > 1 ? "en+es" : to_string(*langs.begin()),
      tenses.size() == 1   ? "1 tense"
      : tenses.size() == 2 ? "2 tenses"
                           : "3+ tenses",
      n <= 3    ? "1-3 words"
      : n <= 8  ? "4-8 words"
      : n <= 16 ? "9-16 words"
                : "17+ words",
  };
}

rc::Gen<Prompt> genAdverbialPrompt() { return make_gen(Family::AdverbialPronoun); }
rc::Gen<Prompt> genPartialPrompt() { return make_gen(Family::Partial); }
rc::Gen<Prompt> genMixedTensePrompt() { return make_gen(Family::MixedTense); }
rc::Gen<Prompt> genPrompt() {
  return rc::gen::weightedOneOf<Prompt>(
      {{2, genAdverbialPrompt()}, {2, genPartialPrompt()}, {1, genMixedTensePrompt()}});
}

std::ostream& operator<<(std::ostream& os, const RunParams& r) {
  os << "seed=" << r.seed << " max_new_tokens=" << r.max_new_tokens;
  if (r.temperature == 0.0f) return os << " greedy";
  os << " temperature=" << r.temperature;
  if (r.top_k > 0) os << " top_k=" << r.top_k;
  if (r.top_p < 1.0f) os << " top_p=" << r.top_p;
  return os;
}

rc::Gen<RunParams> genRunParams(int max_new_tokens) {
  return rc::gen::build<RunParams>(
      rc::gen::set(&RunParams::seed, rc::gen::inRange<uint64_t>(0, 1000000)),
      rc::gen::set(&RunParams::max_new_tokens, genCount(max_new_tokens)),
      rc::gen::set(&RunParams::temperature, genChoice<float>({0.0f, 0.8f, 1.0f, 1.5f})),
      rc::gen::set(&RunParams::top_k, genChoice<int>({0, 40, 5})),
      rc::gen::set(&RunParams::top_p, genChoice<float>({1.0f, 0.9f, 0.5f})));
}

rc::Gen<int> genCount(int n) {
  return rc::Gen<int>([n](const rc::Random&, int) {
    return rc::shrinkable::shrinkRecur(n, [](int x) { return rc::shrink::towards(x, 1); });
  });
}

rc::Gen<std::vector<int>> genChunkBoundaries(int length) {
  if (length <= 1) return rc::gen::just(std::vector<int>{});
  return rc::gen::map(rc::gen::nonEmpty(rc::gen::container<std::set<int>>(rc::gen::inRange(1, length))),
                      [](const std::set<int>& cuts) { return std::vector<int>(cuts.begin(), cuts.end()); });
}

rc::Gen<int> genBatchSize(int max) { return rc::gen::inRange(2, std::max(2, max) + 1); }

rc::Gen<std::vector<int>> genPermutation(int n) {
  return rc::gen::exec([n] {
    std::vector<int> order(static_cast<size_t>(std::max(0, n)));
    for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    // Fisher-Yates from the front; each draw shrinks toward "leave it in place"...
    for (int i = 0; i + 1 < n; ++i)
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(*rc::gen::inRange(i, n))]);
    // ...and the identity, which reorders nothing, becomes a swap of the first two.
    if (n >= 2 && std::is_sorted(order.begin(), order.end())) std::swap(order[0], order[1]);
    return order;
  });
}

}  // namespace miniinfer::gen
