// `minigpt eval`'s measurements, through the engine's generate() (invariant backend, cache on).
#include "train/eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/rng.h"
#include "corpus/tokenizer.h"
#include "engine/engine.h"
#include "engine/generate.h"

namespace miniinfer::train {

namespace {

bool is_past(Tense t) { return t == Tense::PastSimple || t == Tense::Preterito || t == Tense::Imperfecto; }

// Runs prompts through one reused engine, `batch` at a time; sequence i always draws from
// Rng::stream(seed, i), so the answer does not depend on the batch size.
std::vector<std::vector<int>> run(Engine& engine, const std::vector<std::vector<int>>& prompts,
                                  float temperature, int max_new_tokens, uint64_t seed) {
  std::vector<std::vector<int>> out;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(engine.batch())) {
    const size_t n = std::min(prompts.size() - first, static_cast<size_t>(engine.batch()));
    const std::vector<std::vector<int>> chunk(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                              prompts.begin() + static_cast<std::ptrdiff_t>(first + n));
    GenerateOptions g;
    g.max_new_tokens = max_new_tokens;
    g.cache = true;
    g.seed = seed;
    g.first_stream = first;
    g.temperature = temperature;
    g.backend = Backend::Invariant;
    for (auto& tokens : generate(engine, chunk, g).tokens) out.push_back(std::move(tokens));
  }
  return out;
}

// prompt + generated up to and including the first "."; `closed` says whether one came.
std::vector<std::string> sentence_of(const Tokenizer& tok, const std::vector<int>& prompt,
                                     const std::vector<int>& generated, bool& closed) {
  std::vector<int> ids = prompt;
  closed = false;
  for (int t : generated) {
    ids.push_back(t);
    if (t == tok.end_id()) {
      closed = true;
      break;
    }
  }
  return tok.words(ids);
}

std::string join(const std::vector<std::string>& words) { return fmt::format("{}", fmt::join(words, " ")); }

}  // namespace

EvalReport evaluate(const Model& model, const Grammar& grammar, const EvalOptions& o) {
  const Tokenizer tok(model.vocab);
  EvalReport report;

  // Openers: adverbials that can start a sentence, and pronouns.
  std::vector<std::vector<std::string>> openers;
  std::set<std::vector<std::string>> seen;
  for (Lang lang : {Lang::En, Lang::Es}) {
    for (Tense tense : grammar.tenses(lang))
      for (const auto& adv : grammar.adverbials(tense))
        if (grammar.is_prefix(adv) && seen.insert(adv).second) openers.push_back(adv);
    for (const Pronoun& p : grammar.pronouns(lang)) openers.push_back({p.word});
  }
  size_t longest = 0;
  for (const auto& w : openers) longest = std::max(longest, w.size());
  EngineOptions eo;
  eo.backend = Backend::Invariant;
  eo.batch = o.batch;
  eo.capacity = static_cast<int>(longest) + 1 + o.max_new_tokens;
  eo.threads = o.threads;
  eo.window = o.window;
  eo.sinks = o.sinks;
  eo.kv_quant = o.kv_quant;
  eo.kv_residual = o.kv_residual;
  Engine engine(model, eo);

  // Grammaticality at temperature o.temperature.
  Rng pick(Rng::stream(o.seed, 0).next_u64());
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < o.samples; ++i)
    prompts.push_back(tok.encode_words(openers[pick.below(static_cast<uint32_t>(openers.size()))]));
  const auto sampled =
      run(engine, prompts, o.temperature, o.max_new_tokens, Rng::stream(o.seed, 1).next_u64());
  std::vector<std::string> good_examples;
  for (size_t i = 0; i < prompts.size(); ++i) {
    bool closed = false;
    const auto words = sentence_of(tok, prompts[i], sampled[i], closed);
    const bool ok = closed && grammar.is_complete(words);
    report.samples.push_back(join(words));
    report.grammatical.total++;
    report.grammatical.ok += ok;
    if (!ok && report.examples.size() < 5) report.examples.push_back("not grammatical: " + join(words));
    if (ok && good_examples.size() < 5) good_examples.push_back("sampled: " + join(words));
  }

  // Tense agreement, greedy: every adverbial that opens a sentence, with every pronoun. An
  // adverbial may call for several tenses ("tomorrow": will / going to); any of them agrees.
  struct Case {
    std::vector<Tense> tenses;
    std::vector<int> prompt;
  };
  std::vector<Case> cases;
  for (Lang lang : {Lang::En, Lang::Es}) {
    std::vector<std::pair<std::vector<std::string>, std::vector<Tense>>> advs;
    for (Tense tense : grammar.tenses(lang)) {
      for (const auto& adv : grammar.adverbials(tense)) {
        if (!grammar.is_prefix(adv)) continue;
        auto it = std::find_if(advs.begin(), advs.end(), [&](const auto& a) { return a.first == adv; });
        if (it == advs.end())
          advs.push_back({adv, {tense}});
        else
          it->second.push_back(tense);
      }
    }
    for (const auto& [adv, tenses] : advs) {
      for (const Pronoun& p : grammar.pronouns(lang)) {
        std::vector<std::string> words = adv;
        words.push_back(p.word);
        if (grammar.is_prefix(words)) cases.push_back({tenses, tok.encode_words(words)});
      }
    }
  }
  std::vector<std::vector<int>> case_prompts;
  for (const auto& c : cases) case_prompts.push_back(c.prompt);
  const auto greedy = run(engine, case_prompts, 0.0f, o.max_new_tokens, 0);
  for (size_t i = 0; i < cases.size(); ++i) {
    bool closed = false;
    const auto words = sentence_of(tok, cases[i].prompt, greedy[i], closed);
    const auto parsed = closed ? grammar.parse_tenses(words) : std::vector<Tense>{};
    const bool ok = std::any_of(parsed.begin(), parsed.end(), [&](Tense t) {
      return std::find(cases[i].tenses.begin(), cases[i].tenses.end(), t) != cases[i].tenses.end();
    });
    report.all_agreement.total++;
    report.all_agreement.ok += ok;
    const Tense tense = cases[i].tenses.front();
    if (!ok && report.examples.size() < 10)
      report.examples.push_back(fmt::format("wrong {} agreement: {}", to_string(tense), join(words)));
    if (!is_past(tense)) continue;
    report.past_agreement.total++;
    report.past_agreement.ok += ok;
    auto it = std::find_if(report.past_by_tense.begin(), report.past_by_tense.end(),
                           [&](const Tally& t) { return t.name == to_string(tense); });
    if (it == report.past_by_tense.end()) {
      report.past_by_tense.push_back({to_string(tense), 0, 0});
      it = report.past_by_tense.end() - 1;
    }
    it->total++;
    it->ok += ok;
  }

  // "Yesterday I", greedy.
  const std::vector<int> yi = tok.encode("Yesterday I");
  const auto cont = run(engine, {yi}, 0.0f, o.max_new_tokens, 0);
  bool closed = false;
  const auto words = sentence_of(tok, yi, cont[0], closed);
  report.yesterday_i = join(words);
  const std::string first = tok.token(cont[0][0]);
  for (const Verb& v : grammar.verbs(Lang::En)) {
    auto f = v.forms.find("past");
    if (f != v.forms.end() && f->second == first) report.yesterday_i_past = true;
  }
  for (auto& e : good_examples) report.examples.push_back(std::move(e));
  return report;
}

std::string format_report(const EvalReport& r) {
  auto line = [](const Tally& t) {
    return fmt::format("{}: {:.1f}% ({}/{})\n", t.name, t.percent(), t.ok, t.total);
  };
  auto target = [](bool met) { return met ? "met" : "NOT MET"; };
  std::string out =
      fmt::format("{}  target >= 95%: {}\n", line(r.grammatical).substr(0, line(r.grammatical).size() - 1),
                  target(r.grammatical.percent() >= 95.0));
  out += fmt::format("{}  target >= 98%: {}\n",
                     line(r.past_agreement).substr(0, line(r.past_agreement).size() - 1),
                     target(r.past_agreement.percent() >= 98.0));
  for (const auto& t : r.past_by_tense) out += "  " + line(t);
  out += line(r.all_agreement);
  out += fmt::format("\"Yesterday I\" -> \"{}\" ({})  target: English past simple: {}\n", r.yesterday_i,
                     r.yesterday_i_past ? "English past simple" : "not an English past-simple verb",
                     target(r.yesterday_i_past));
  for (const auto& e : r.examples) out += "  " + e + "\n";
  return out;
}

}  // namespace miniinfer::train
