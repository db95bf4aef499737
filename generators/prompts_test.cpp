#include "generators/prompts.h"

#include <rapidcheck.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>

using namespace miniinfer;
using namespace miniinfer::gen;

namespace {
const Grammar& grammar() { return Grammar::builtin(); }

// Runs a property through RapidCheck with a fixed seed, so this unit test is repeatable.
rc::detail::TestResult run(const std::string& id, std::function<void()> property, int cases = 300) {
  rc::detail::TestParams params;
  params.seed = 1;
  params.maxSuccess = cases;
  rc::detail::TestMetadata meta{id, id};
  // A silent listener: the planted failures below are expected, so RapidCheck must not print
  // its end-of-run "properties had failures" banner for them.
  rc::detail::TestListenerAdapter listener;
  return rc::detail::checkTestable(std::move(property), meta, params, listener,
                                   std::unordered_map<std::string, rc::detail::Reproduce>{});
}

std::string show(const rc::detail::TestResult& r) {
  std::ostringstream os;
  rc::detail::printResultMessage(r, os);
  return os.str();
}
}  // namespace

TEST_CASE("every generated prompt, of every family, is a valid prefix of the grammar") {
  for (auto [name, g] : {std::pair{"a", genAdverbialPrompt()}, std::pair{"b", genPartialPrompt()},
                         std::pair{"c", genMixedTensePrompt()}}) {
    INFO("family " << name);
    auto r = run(name, [g = g] {
      const Prompt p = *g;
      RC_ASSERT(grammar().is_prefix(p.words()));
      RC_ASSERT(!p.words().empty());
    });
    CHECK(r.is<rc::detail::SuccessResult>());
    INFO(show(r));
  }
}

TEST_CASE("each family keeps its shape: adverbial+pronoun, 4-8 words, 8-32 words in 2+ tenses") {
  auto a = run("a", [] {
    const Prompt p = *genAdverbialPrompt();
    const auto& s = p.sentences.front();
    RC_ASSERT(s.adverbial >= 0);
    const auto& pronoun = grammar().pronouns(language_of(s.tense))[static_cast<size_t>(s.pronoun)].word;
    RC_ASSERT(p.words().back() == pronoun);
  });
  CHECK(a.is<rc::detail::SuccessResult>());
  auto b = run("b", [] {
    const auto n = (*genPartialPrompt()).words().size();
    RC_ASSERT(n >= 4u);
    RC_ASSERT(n <= 8u);
  });
  CHECK(b.is<rc::detail::SuccessResult>());
  auto c = run("c", [] {
    const Prompt p = *genMixedTensePrompt();
    RC_ASSERT(p.words().size() >= 8u);
    RC_ASSERT(p.words().size() <= 32u);
    RC_ASSERT(p.sentences.size() >= 2u);
    RC_ASSERT(p.sentences[0].tense != p.sentences[1].tense);
  });
  CHECK(c.is<rc::detail::SuccessResult>());
}

TEST_CASE("every shrink of a prompt is grammatical, new, and no longer than its input") {
  auto r = run("shrinks", [] {
    const Prompt p = *genPrompt();
    for (const Prompt& q : shrink_prompt(p)) {
      RC_ASSERT(grammar().is_prefix(q.words()));
      RC_ASSERT(q.words() != p.words());
      RC_ASSERT(q.words().size() <= p.words().size());
      RC_ASSERT(q.sentences.size() <= p.sentences.size());
    }
  });
  CHECK(r.is<rc::detail::SuccessResult>());
  INFO(show(r));
}

TEST_CASE("the shrinker, given a planted predicate, reaches the known minimum") {
  // Planted bug: "any prompt of two or more words fails". The smallest grammatical failing
  // prompt is the first two words of the canonical sentence: first tense, no adverbial,
  // first pronoun, first verb.
  auto r = run("planted", [] {
    const Prompt p = *genMixedTensePrompt();
    RC_ASSERT(p.words().size() < 2u);
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  const auto& failure = r.get<rc::detail::FailureResult>();
  const Prompt expected{Family::MixedTense, {SentenceSpec{Tense::PastSimple, -1, 0, 0}}, 2};
  std::ostringstream want;
  want << expected;
  REQUIRE(failure.counterExample.size() == 1u);
  CHECK(failure.counterExample[0].second == want.str());
}

TEST_CASE("the shrinker heads for English: a planted 'any Spanish word' bug shrinks to one Spanish word") {
  auto r = run("spanish", [] {
    const Prompt p = *genMixedTensePrompt();
    for (const auto& s : p.sentences) RC_ASSERT(language_of(s.tense) == Lang::En);
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  const auto& text = r.get<rc::detail::FailureResult>().counterExample[0].second;
  INFO(text);
  CHECK(text.find("1 words") != std::string::npos);
}

TEST_CASE("partial prompts reach into objects: 'ayer ella hizo la'") {
  // Of 300 partial prompts, some must end inside or right after an object (a word that is
  // no verb form, pronoun, adverbial or function word: "la", "the", "door").
  int into_object = 0;
  auto r = run("objects", [&into_object] {
    const Prompt p = *genPartialPrompt();
    const SentenceSpec& s = p.sentences.front();
    const Lang lang = language_of(s.tense);
    const auto full = grammar().render(s).words;
    const auto phrases = grammar().complements(lang, s.verb);
    if (s.complement == 0 && grammar().verbs(lang)[static_cast<size_t>(s.verb)].frame.optional) return;
    if (phrases.empty()) return;
    // The object starts where one of the verb's phrases ends the sentence (before ".");
    // an agreeing predicate ("felices") may differ from the canonical phrase, so it does not count.
    const size_t n = p.words().size();
    size_t object_start = full.size() - 1;
    for (const auto& phrase : phrases)
      if (phrase.size() < full.size() &&
          std::equal(phrase.begin(), phrase.end(), full.end() - 1 - static_cast<long>(phrase.size())))
        object_start = full.size() - 1 - phrase.size();
    if (n > object_start) ++into_object;
    RC_ASSERT(full.size() > n);
  });
  CHECK(r.is<rc::detail::SuccessResult>());
  INFO(into_object << " of 300 partial prompts reach into an object");
  CHECK(into_object >= 10);
}

TEST_CASE("the shrinker keeps an object when the failure needs one: a planted 'contains door' bug") {
  auto r = run("door", [] {
    const Prompt p = *genPrompt();
    const auto words = p.words();
    RC_ASSERT(std::find(words.begin(), words.end(), "door") == words.end());
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  const auto& text = r.get<rc::detail::FailureResult>().counterExample[0].second;
  INFO(text);
  // Only "open" takes "the door": first tense, no adverbial, first pronoun, cut after "door".
  CHECK(text.rfind("\"I opened the door\"", 0) == 0);
}

TEST_CASE("run parameters shrink toward greedy, seed 0 and one new token") {
  auto r = run("params", [] {
    const RunParams p = *genRunParams(64);
    RC_ASSERT(p.max_new_tokens >= 1);
    RC_ASSERT(p.max_new_tokens <= 64);
    RC_ASSERT(false);  // planted: every case fails, so the minimum is the smallest value
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  std::ostringstream want;
  want << RunParams{0, 1, 0.0f, 0, 1.0f};
  CHECK(r.get<rc::detail::FailureResult>().counterExample[0].second == want.str());
}

TEST_CASE("chunk boundaries are sorted, strictly inside the prompt, and at least one") {
  auto r = run("chunks", [] {
    const int length = *rc::gen::inRange(1, 33);
    const auto cuts = *genChunkBoundaries(length);
    RC_ASSERT(cuts.size() >= (length >= 2 ? 1u : 0u));
    for (size_t i = 0; i < cuts.size(); ++i) {
      RC_ASSERT(cuts[i] > 0);
      RC_ASSERT(cuts[i] < length);
      if (i > 0) RC_ASSERT(cuts[i - 1] < cuts[i]);
    }
  });
  CHECK(r.is<rc::detail::SuccessResult>());
}

TEST_CASE("batch sizes are 2 or more, and shrink to 2") {
  auto r = run("batch", [] {
    const int max = *rc::gen::inRange(1, 9);
    const int n = *genBatchSize(max);
    RC_ASSERT(n >= 2);
    RC_ASSERT(n <= std::max(2, max));
    RC_ASSERT(false);  // planted: the minimum is the smallest batch
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  CHECK(r.get<rc::detail::FailureResult>().counterExample.back().second == "2");
}

TEST_CASE("a generated permutation is one, and moves something") {
  auto r = run("permutation", [] {
    const int n = *rc::gen::inRange(2, 9);
    auto order = *genPermutation(n);
    RC_ASSERT(static_cast<int>(order.size()) == n);
    RC_ASSERT(!std::is_sorted(order.begin(), order.end()));
    std::sort(order.begin(), order.end());
    for (int i = 0; i < n; ++i) RC_ASSERT(order[static_cast<size_t>(i)] == i);
  });
  CHECK(r.is<rc::detail::SuccessResult>());
  INFO(show(r));
}

TEST_CASE("a partial prompt stays inside one sentence and stops before its end") {
  auto r = run("partial", [] {
    const Prompt p = *genPartialPrompt();
    RC_ASSERT(p.sentences.size() == 1u);
    RC_ASSERT(p.words().size() < Grammar::builtin().render(p.sentences[0]).words.size());
  });
  CHECK(r.is<rc::detail::SuccessResult>());
  INFO(show(r));
}

TEST_CASE("the shrinker drops leading words: a planted 'ends in a pronoun' bug shrinks to one pronoun") {
  // "Yesterday I" fails, and so does "I"; "I worked" (the adverbial dropped, the length kept)
  // does not. The true minimum is reachable only by dropping the adverbial's words too.
  auto r = run("leading", [] {
    const Prompt p = *genAdverbialPrompt();
    const auto words = p.words();
    const auto& s = p.sentences.back();
    const auto& pronoun =
        Grammar::builtin().pronouns(language_of(s.tense))[static_cast<size_t>(s.pronoun)].word;
    RC_ASSERT(words.back() != pronoun);
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  const auto& text = r.get<rc::detail::FailureResult>().counterExample[0].second;
  INFO(text);
  CHECK(text.starts_with("\"I\" ("));
}

TEST_CASE("the shrinker drops a leading sentence: a planted 'contains he' bug shrinks to \"he\"") {
  auto r = run("sentence", [] {
    const Prompt p = *genMixedTensePrompt();
    const auto words = p.words();
    RC_ASSERT(std::find(words.begin(), words.end(), "he") == words.end());
  });
  REQUIRE(r.is<rc::detail::FailureResult>());
  const auto& text = r.get<rc::detail::FailureResult>().counterExample[0].second;
  INFO(text);
  CHECK(text.starts_with("\"he\" ("));
}
