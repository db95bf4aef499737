#include "props/cases.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <set>

#include <fmt/format.h>

#include "base/error.h"
#include "base/rng.h"
#include "model/model_file.h"
#include "props/context.h"
#include "props/engines.h"
#include "props/level.h"

namespace miniinfer::props {
namespace {

// The engine a case runs on: the run's, or (p10) one of ours for a random architecture.
struct Target {
  std::unique_ptr<Model> model;
  std::unique_ptr<Engine> owned;
  std::unique_ptr<EngineUnderTest> wrapped;
  EngineUnderTest* engine = nullptr;
};

Target target_for(const Case& c) {
  Target t;
  if (!c.arch) {
    t.engine = context().subject.get();
    return t;
  }
  if (!context().subject->has(Capability::Architectures))
    fail("case {}: a random architecture needs an engine with {}; {} has none", c.property,
         to_string(Capability::Architectures), context().subject->name());
  t.model = std::make_unique<Model>(init_model(*c.arch, context().model.vocab, c.arch_seed));
  EngineOptions eo;
  eo.backend = context().backend;
  eo.batch = kBatch;
  t.owned = std::make_unique<Engine>(*t.model, eo);
  t.wrapped = wrap_engine(*t.owned, context().backend, context().fault);
  t.engine = t.wrapped.get();
  return t;
}

// K and V rows: our engine's cache, or an Error (the property needing them is skipped before).
Engine& native(EngineUnderTest& e) {
  Engine* n = e.native();
  if (!n) fail("engine {} has no {}", e.name(), to_string(Capability::KvRows));
  return *n;
}

// The largest ULP distance between two equally long rows (bits: any difference at all).
bool rows_within(std::span<const float> a, std::span<const float> b) {
  if (std::memcmp(a.data(), b.data(), a.size_bytes()) == 0) return true;
  const uint64_t allowed = run_level().allowed_ulp();
  if (run_level().kind == Level::Bits) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ulp_distance(a[i], b[i]) > allowed) return false;
  return true;
}

GenerateOptions options_for(const Case& c, bool cache) {
  GenerateOptions o = base_options();
  o.max_new_tokens = c.params.max_new_tokens;
  o.seed = c.params.seed;
  o.temperature = c.params.temperature;
  o.top_k = c.params.top_k;
  o.top_p = c.params.top_p;
  o.cache = cache;
  return o;
}

Script base_script(const Case& c, const std::vector<int>& prompt, uint64_t stream) {
  Script s;
  s.seed = c.params.seed;
  s.stream = stream;
  s.sampler = {c.params.temperature, c.params.top_k, c.params.top_p};
  s.ops.push_back({Op::Append, prompt, 0, 0});
  return s;
}

Script resume_script(const Case& c) {
  Script s = base_script(c, c.prompts[0], 0);
  s.ops.push_back({Op::Generate, {}, c.k, 0});
  s.ops.push_back({Op::Append, c.chunk, 0, 0});
  s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  return s;
}

Script chunked_script(const Case& c) {
  Script s;
  s.seed = c.params.seed;
  s.sampler = {c.params.temperature, c.params.top_k, c.params.top_p};
  const auto& prompt = c.prompts[0];
  int from = 0;
  for (int cut : c.cuts) {
    s.ops.push_back({Op::Append, std::vector<int>(prompt.begin() + from, prompt.begin() + cut), 0, 0});
    s.ops.push_back({Op::Forward, {}, 0, 0});
    from = cut;
  }
  s.ops.push_back({Op::Append, std::vector<int>(prompt.begin() + from, prompt.end()), 0, 0});
  s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  return s;
}

Script rollback_script(const Case& c) {
  Script s = base_script(c, c.prompts[0], 0);
  s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  s.ops.push_back({Op::Truncate, {}, static_cast<int>(c.prompts[0].size()) + c.k, 0});
  s.ops.push_back({Op::Reseed, {}, 0, c.params.seed + 1});
  s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  return s;
}

// Two runs' tokens and logits at the run's level (level.h); the message names the finer level.
std::optional<std::string> judge_runs(const std::string& what, const std::vector<int>& ta, const std::vector<int>& tb,
                                      const std::vector<float>& la, const std::vector<float>& lb, int V) {
  return judge(what, compare_runs(ta, tb, la, lb, V), V, &la, &lb);
}

// Every (layer, head, slot) K and V row of sequence `seq` against full recompute on `tokens`.
std::optional<std::string> check_slots(EngineUnderTest& subject, int seq, const std::vector<int>& tokens) {
  Engine& e = native(subject);
  const int n = e.cursor(seq);
  KvRows kv;
  e.forward_uncached(std::span<const int>(tokens).first(static_cast<size_t>(n)), false, &kv);
  const Config& cf = e.config();
  for (int s = 0; s < n; ++s)
    for (int l = 0; l < cf.n_layer; ++l)
      for (int h = 0; h < cf.n_head; ++h) {
        const auto ck = e.cache().k_row(l, seq, h, s), cv = e.cache().v_row(l, seq, h, s);
        if (!rows_within(ck, kv.k_row(l, h, s)))
          return fmt::format("cache K row differs from full recompute at layer {}, head {}, slot {}", l, h, s);
        if (!rows_within(cv, kv.v_row(l, h, s)))
          return fmt::format("cache V row differs from full recompute at layer {}, head {}, slot {}", l, h, s);
      }
  return std::nullopt;
}

// p1/p2 (logits = false) are token properties, but the logits are compared anyway to say at which
// finer level a passing case parted; they fail on logits only at the bits and ulp levels.
std::optional<std::string> check_cached_equals_uncached(EngineUnderTest& e, Case& c, bool logits) {
  GenerateOptions cached = options_for(c, true), uncached = options_for(c, false);
  cached.return_logits = uncached.return_logits = true;
  const auto a = e.generate(c.prompts, cached);
  const auto b = e.generate(c.prompts, uncached);
  if (!logits && a.tokens[0] == b.tokens[0]) {
    // p1, p2 promise tokens: the logits are observed (judge) for the finer-level line, not judged.
    (void)judge("cached vs uncached", compare_runs(a.tokens[0], b.tokens[0], a.logits[0], b.logits[0], e.vocab_size()));
    return std::nullopt;
  }
  return judge_runs("cached vs uncached", a.tokens[0], b.tokens[0], a.logits[0], b.logits[0], e.vocab_size());
}

// p12's coins: for draw (step, seq), a coin within 3 ULP of one of the sampler's edges for
// those logits (sample_edges), chosen by (coin_seed, step, seq) alone, so both loops, and a
// replay, put the same coin beside the same edge whenever they see the same logits.
CoinSource boundary_coins(const Case& c) {
  const SamplerOptions o{c.params.temperature, c.params.top_k, c.params.top_p};
  const uint64_t seed = c.coin_seed;
  return [o, seed](int step, size_t seq, std::span<const float> logits, float coin) {
    const auto edges = sample_edges(logits, o);
    if (edges.empty()) return coin;
    Rng pick = Rng::stream(seed, (static_cast<uint64_t>(step) << 16) + seq);
    float c = edges[pick.below(static_cast<uint32_t>(edges.size()))];
    const int ulps = static_cast<int>(pick.below(7)) - 3;
    for (int i = 0; i < std::abs(ulps); ++i) c = std::nextafter(c, ulps < 0 ? 0.0f : 1.0f);
    return std::min(c, std::nextafter(1.0f, 0.0f));
  };
}

std::optional<std::string> check_boundary(EngineUnderTest& e, Case& c) {
  GenerateOptions cached = options_for(c, true), uncached = options_for(c, false);
  cached.return_logits = uncached.return_logits = true;
  cached.coins = uncached.coins = boundary_coins(c);
  const auto a = e.generate(c.prompts, cached);
  const auto b = e.generate(c.prompts, uncached);
  const Closeness cl = compare_runs(a.tokens[0], b.tokens[0], a.logits[0], b.logits[0], e.vocab_size());
  auto what = judge("coins beside the sampler's edges, cached vs uncached", cl, e.vocab_size(), &a.logits[0], &b.logits[0]);
  if (what && !cl.tokens_equal() && cl.bits_step < 0)
    return fmt::format("coins beside the sampler's edges, cached vs uncached: tokens differ first at step {} from "
                       "identical logits: the two loops draw differently", cl.token_step);
  return what;
}

std::optional<std::string> check_batch(EngineUnderTest& e, Case& c) {
  for (bool cache : {true, false}) {
    GenerateOptions o = options_for(c, cache);
    o.return_logits = true;
    const auto batch = e.generate(c.prompts, o);
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      GenerateOptions solo_o = o;
      solo_o.first_stream = i;
      const auto solo = e.generate({c.prompts[i]}, solo_o);
      c.seq = static_cast<int>(i);
      const std::string what = fmt::format("{} batch vs solo (sequence {})", cache ? "cached" : "uncached", i);
      if (auto f = judge_runs(what, batch.tokens[i], solo.tokens[0], batch.logits[i], solo.logits[0], e.vocab_size()))
        return f;
    }
  }
  c.seq = 0;
  return std::nullopt;
}

std::optional<std::string> check_scripts(EngineUnderTest& e, const Script& s, const char* what) {
  const ScriptRun a = run_script(e, s, true), b = run_script(e, s, false);
  return judge_runs(what, a.generated, b.generated, flat_logits(a.logits), flat_logits(b.logits), e.vocab_size());
}

std::optional<std::string> check_chunked(EngineUnderTest& subject, Case& c) {
  // One-shot prefill in sequence 1, chunked prefill in sequence 0, then compare bytes.
  const auto& prompt = c.prompts[0];
  subject.clean_slate();
  const auto one_shot = subject.forward_cached(1, prompt, true);
  int from = 0;
  std::vector<int> ends(c.cuts);
  ends.push_back(static_cast<int>(prompt.size()));
  const size_t V = static_cast<size_t>(subject.vocab_size());
  std::vector<float> chunked, one_shot_ends;
  for (int end : ends) {
    const auto logits = subject.forward_cached(0, std::span<const int>(prompt).subspan(static_cast<size_t>(from), static_cast<size_t>(end - from)));
    chunked.insert(chunked.end(), logits.begin(), logits.end());
    const auto row = one_shot.begin() + static_cast<long>((static_cast<size_t>(end) - 1) * V);
    one_shot_ends.insert(one_shot_ends.end(), row, row + static_cast<long>(V));
    from = end;
  }
  if (auto f = judge("chunked prefill vs one-shot prefill, the logits at each chunk's end",
                     compare_logits(chunked, one_shot_ends, static_cast<int>(V)), static_cast<int>(V), &chunked,
                     &one_shot_ends))
    return *f + fmt::format(" (chunk ends at {})", fmt::join(ends, ", "));
  // The cache bytes of the two, on an engine whose rows we can read (otherwise the run says
  // that this part is not checked: props_main's capability notes).
  if (subject.has(Capability::KvRows)) {
  Engine& e = native(subject);
  const Config& cf = e.config();
  for (int s = 0; s < static_cast<int>(prompt.size()); ++s)
    for (int l = 0; l < cf.n_layer; ++l)
      for (int h = 0; h < cf.n_head; ++h) {
        const auto a = e.cache().k_row(l, 0, h, s), b = e.cache().k_row(l, 1, h, s);
        const auto va = e.cache().v_row(l, 0, h, s), vb = e.cache().v_row(l, 1, h, s);
        if (!rows_within(a, b) || !rows_within(va, vb))
          return fmt::format("chunked prefill: cache row differs from one-shot at layer {}, head {}, slot {}", l, h, s);
      }
  }
  return check_scripts(subject, chunked_script(c), "chunked prefill then decode vs uncached");
}

std::optional<std::string> check_rollback(EngineUnderTest& e, Case& c) {
  const Script s = rollback_script(c);
  const ScriptRun rolled = run_script(e, s, true);
  const size_t p = c.prompts[0].size() + static_cast<size_t>(c.k);
  Script fresh = base_script(c, std::vector<int>(rolled.tokens.begin(), rolled.tokens.begin() + static_cast<long>(p)), 0);
  fresh.ops.push_back({Op::Reseed, {}, 0, c.params.seed + 1});
  fresh.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  const ScriptRun again = run_script(e, fresh, true);
  const size_t n = static_cast<size_t>(c.params.max_new_tokens);
  const std::vector<int> tail(rolled.generated.end() - static_cast<long>(n), rolled.generated.end());
  if (auto f = judge_runs("truncate and regenerate vs fresh run", tail, again.generated, flat_logits(rolled.logits, n),
                          flat_logits(again.logits), e.vocab_size()))
    return f;
  return check_scripts(e, s, "truncate and regenerate vs uncached");
}

std::optional<std::string> check_repeat_and_order(EngineUnderTest& e, Case& c) {
  GenerateOptions o = options_for(c, true);
  o.return_logits = true;
  const auto first = e.generate(c.prompts, o);
  const auto second = e.generate(c.prompts, o);
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    if (auto f = judge_runs(fmt::format("the same seed twice on one engine, sequence {}", i), first.tokens[i],
                            second.tokens[i], first.logits[i], second.logits[i], e.vocab_size())) {
      c.seq = static_cast<int>(i);
      c.twice = true;
      return f;
    }
  }
  // Order: sampling coins follow the batch index, so this half runs greedy (tokens then
  // depend on logits alone) and compares each prompt with itself across the two orders.
  o.temperature = 0.0f;
  const auto in_order = e.generate(c.prompts, o);
  std::vector<std::vector<int>> permuted;
  for (int i : c.order) permuted.push_back(c.prompts[static_cast<size_t>(i)]);
  const auto reordered = e.generate(permuted, o);
  for (size_t j = 0; j < c.order.size(); ++j) {
    const size_t i = static_cast<size_t>(c.order[j]);
    if (auto f = judge_runs(fmt::format("batch order: prompt {} at batch position {} against position {}", i, j, i),
                            in_order.tokens[i], reordered.tokens[j], in_order.logits[i], reordered.logits[j],
                            e.vocab_size())) {
      c.seq = static_cast<int>(j);
      return f;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_case(Case& c) {
  Target t = target_for(c);
  EngineUnderTest& e = *t.engine;
  // Each case starts from a clean slate, so a case's outcome never depends on the one before
  // (shrinking and replay need that); faults between requests show within one case (p3, p9).
  e.clean_slate();
  const std::string& p = c.property;
  if (p == "p1" || p == "p2") return check_cached_equals_uncached(e, c, false);
  if (p == "p6") return check_cached_equals_uncached(e, c, true);
  if (p == "p3") return check_batch(e, c);
  if (p == "p4") return check_scripts(e, resume_script(c), "resume (prompt, decode, chunk, decode) vs uncached");
  if (p == "p5") return check_chunked(e, c);
  if (p == "p7") {
    GenerateOptions o = options_for(c, true);
    const auto g = e.generate(c.prompts, o);
    std::vector<int> all = c.prompts[0];
    all.insert(all.end(), g.tokens[0].begin(), g.tokens[0].end());
    return check_slots(e, 0, all);
  }
  if (p == "p8") return check_rollback(e, c);
  if (p == "p12") return check_boundary(e, c);
  if (p == "p9") return check_repeat_and_order(e, c);
  if (p == "p10") {
    if (auto f = check_cached_equals_uncached(e, c, true)) return "random architecture: " + *f;
    if (auto f = check_batch(e, c)) return "random architecture: " + *f;
    GenerateOptions o = options_for(c, true);
    Case one = c;
    one.prompts.resize(1);
    const auto g = e.generate(one.prompts, o);
    std::vector<int> all = c.prompts[0];
    all.insert(all.end(), g.tokens[0].begin(), g.tokens[0].end());
    c.seq = 0;
    if (auto f = check_slots(e, 0, all)) return "random architecture: " + *f;
    return std::nullopt;
  }
  fail("unknown property '{}'", p);
}

namespace {

// The cached runs that may explain a failing case, most direct first: the case as the property
// ran it, then after a warm-up request on the same engine (faults between requests).
std::vector<Scenario> scenarios_for(const Case& c) {
  const std::string& p = c.property;
  const size_t seq = std::min(static_cast<size_t>(c.seq), c.prompts.size() - 1);
  Scenario sc;
  sc.batch_options = options_for(c, true);
  if (p == "p4") {
    sc.script = resume_script(c);
  } else if (p == "p5") {
    sc.script = chunked_script(c);
  } else if (p == "p8") {
    sc.script = rollback_script(c);
  } else {
    sc.script = base_script(c, c.prompts[seq], seq);
    sc.script.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  }
  std::vector<Scenario> out;
  if (c.prompts.size() > 1 || p == "p3" || p == "p9") {
    Scenario b = sc;
    b.batch = c.prompts;
    b.seq = static_cast<int>(seq);
    if (p == "p9" && !c.twice) {  // the reordered, greedy run
      b.batch.clear();
      for (int i : c.order) b.batch.push_back(c.prompts[static_cast<size_t>(i)]);
      b.batch_options.temperature = 0.0f;
      b.script = base_script(c, b.batch[seq], seq);
      b.script.sampler.temperature = 0.0f;
      b.script.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
    }
    b.twice = p == "p9" && c.twice;
    out.push_back(b);
    Scenario solo = sc;  // the solo run that follows the batch on one engine
    solo.warmup = c.prompts;
    out.push_back(solo);
  } else {
    out.push_back(sc);
  }
  Scenario again = out.front();
  again.twice = true;
  out.push_back(again);
  return out;
}

}  // namespace

Failure report_case(const Case& c, const std::string& headline) {
  Target t = target_for(c);
  Failure f;
  if (c.property == "p12" && headline.ends_with("the two loops draw differently")) {
    // Nothing to trace: the logits agree bit for bit; the loops part in the sampler.
    f.property = c.property;
    f.headline = headline;
    f.text = fmt::format("  {}\n  the logits of every step agree bit for bit; the cached and the uncached loop turned\n"
                         "  them into different tokens with the same coin: the difference is on the way from\n"
                         "  logits to a token (generate.cpp's Sampling::draw must be the only way there)\n", headline);
    f.json = {{"property", c.property}, {"headline", headline},
              {"first_parting", {{"layer", -1}, {"head", -1}, {"component", "sampler"}}}, {"verdict", "gross"}};
    f.located = true;
    f.case_json = case_to_json(c);
    return f;
  }
  for (const Scenario& sc : scenarios_for(c)) {
    t.engine->clean_slate();
    try {
      f = diagnose(*t.engine, sc, c.property, headline, context().model.vocab);
    } catch (const std::exception& e) {
      f.property = c.property;
      f.headline = headline;
      f.text = fmt::format("  {}\n  the traced re-run stopped with an error: {}\n", headline, e.what());
      f.json = {{"property", c.property}, {"headline", headline}, {"error", e.what()}};
      f.located = true;
    }
    if (f.located) break;
  }
  f.case_json = case_to_json(c);
  return f;
}

std::ostream& operator<<(std::ostream& os, const Case& c) {
  const Tokenizer& tok = *context().tokenizer;
  for (size_t i = 0; i < c.prompts.size(); ++i)
    os << (i ? ", " : "") << '"' << tok.decode(c.prompts[i]) << '"';
  os << " [" << c.params << "]";
  if (c.property == "p4") os << " resume after " << c.k << " tokens with \"" << tok.decode(c.chunk) << '"';
  if (c.property == "p5") {
    os << " cut at";
    for (int cut : c.cuts) os << ' ' << cut;
  }
  if (c.property == "p8") os << " roll back to prompt+" << c.k;
  if (c.property == "p12") os << " coins beside the sampler's edges, seed " << c.coin_seed;
  if (c.arch)
    os << " arch L=" << c.arch->n_layer << " H=" << c.arch->n_head << " d_head=" << c.arch->d_head()
       << " F=" << c.arch->d_ff << " weights seed " << c.arch_seed;
  return os;
}

nlohmann::json case_to_json(const Case& c) {
  const Context& ctx = context();
  nlohmann::json prompts = nlohmann::json::array();
  for (const auto& p : c.prompts) prompts.push_back({{"text", ctx.tokenizer->decode(p)}, {"ids", p}});
  nlohmann::json j = {
      {"property", c.property},
      {"prompts", prompts},
      {"params", {{"seed", c.params.seed}, {"max_new_tokens", c.params.max_new_tokens},
                  {"temperature", c.params.temperature}, {"top_k", c.params.top_k}, {"top_p", c.params.top_p}}},
      {"k", c.k}, {"chunk", c.chunk}, {"cuts", c.cuts}, {"order", c.order},
      {"seq", c.seq}, {"twice", c.twice},
      {"model", ctx.model_label}, {"model_sha256", ctx.model_sha256},
      {"backend", to_string(ctx.backend)}, {"fault", to_string(ctx.fault)},
      {"engine", ctx.subject ? ctx.subject->name() : "miniinfer"},
      {"engine_settings", ctx.subject ? ctx.subject->settings() : nlohmann::json::object()},
      {"level", to_string(run_level())},
      {"arch", c.arch ? nlohmann::json::parse(config_to_json(*c.arch)) : nlohmann::json(nullptr)},
      {"arch_seed", c.arch_seed}, {"coin_seed", c.coin_seed}};
  return j;
}

// What a saved case must satisfy before any property indexes with it: a hand-edited or damaged
// file gets a one-line Error, never an out-of-range read (the fuzz target case_file_fuzz holds
// this to account). Token ids and lengths are the engine's to check, against the model.
void check_case_shape(const Case& c) {
  static const std::set<std::string> known = {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p12"};
  if (!known.count(c.property)) fail("case: unknown property '{}'", printable_name(c.property));
  if (c.prompts.empty()) fail("case: no prompts");
  if (c.prompts.size() > static_cast<size_t>(kBatch)) fail("case: {} prompts, more than {}", c.prompts.size(), kBatch);
  for (size_t i = 0; i < c.prompts.size(); ++i)
    if (c.prompts[i].empty()) fail("case: prompt {} is empty", i);
  constexpr int kMaxNew = 4096;
  if (c.params.max_new_tokens < 0 || c.params.max_new_tokens > kMaxNew)
    fail("case: max_new_tokens {} outside 0..{}", c.params.max_new_tokens, kMaxNew);
  if (c.k < 0 || c.k > kMaxNew) fail("case: k {} outside 0..{}", c.k, kMaxNew);
  if (c.property == "p8" && c.k > c.params.max_new_tokens)
    fail("case: p8 rolls back to prompt+{}, past the {} tokens it generates", c.k, c.params.max_new_tokens);
  if (c.property == "p4" && c.chunk.empty()) fail("case: p4 resumes with an empty chunk");
  const int len = static_cast<int>(c.prompts[0].size());
  for (size_t i = 0; i < c.cuts.size(); ++i)
    if (c.cuts[i] <= (i ? c.cuts[i - 1] : 0) || c.cuts[i] >= len)
      fail("case: cuts must rise strictly inside the prompt's 1..{}, got {} at {}", len - 1, c.cuts[i], i);
  if (!c.order.empty()) {
    std::vector<int> sorted(c.order);
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sorted.size() != c.prompts.size() || sorted[i] != static_cast<int>(i))
        fail("case: order is not a permutation of the {} prompts", c.prompts.size());
  }
  if (c.seq < 0 || c.seq >= static_cast<int>(c.prompts.size()))
    fail("case: seq {} outside 0..{}", c.seq, c.prompts.size() - 1);
  if (c.arch) {  // as p10 draws them, with room: a file cannot ask for a huge model
    c.arch->validate();
    if (c.arch->n_layer > 8 || c.arch->d_model > 1024 || c.arch->d_ff > 4096 || c.arch->max_seq_len > 1024)
      fail("case: arch {} is larger than p10 draws (n_layer <= 8, d_model <= 1024, d_ff <= 4096, max_seq_len <= 1024)",
           config_to_json(*c.arch));
    if (context().tokenizer && c.arch->vocab_size != static_cast<int>(context().model.vocab.size()))
      fail("case: arch vocab_size {} is not the model's {}", c.arch->vocab_size, context().model.vocab.size());
  }
}

namespace {
std::string json_why(const nlohmann::json::exception& e) {
  std::string why = e.what();  // "[json.exception.out_of_range.403] key 'k' not found"
  if (const auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
  return why;
}
}  // namespace

SavedCase saved_case_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("case: must be a JSON object, got {}", j.type_name());
  try {
    SavedCase s;
    s.is_program = j.contains("property") && j.at("property") == "p11";
    if (s.is_program)
      s.program = program_from_json(j);
    else
      s.c = case_from_json(j);
    s.backend = j.value("backend", std::string("invariant"));
    s.fault = j.value("fault", std::string("none"));
    s.model_sha256 = j.value("model_sha256", std::string());
    s.engine = j.value("engine", std::string("miniinfer"));
    const EngineDecl* engine = find_engine(s.engine);
    if (!engine) fail("case: engine '{}' is not {}", printable_name(s.engine), engine_names());
    if (engine->read_saved) s.engine_settings = engine->read_saved(j.at("engine_settings"));
    s.level = j.value("level", std::string("bits"));
    level_from_name(s.level);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("case: {}", json_why(e));
  }
}

Case case_from_json(const nlohmann::json& j) {
  try {
    Case c;
    c.property = j.at("property").get<std::string>();
    for (const auto& p : j.at("prompts")) c.prompts.push_back(p.at("ids").get<std::vector<int>>());
    const auto& r = j.at("params");
    c.params = {r.at("seed").get<uint64_t>(), r.at("max_new_tokens").get<int>(), r.at("temperature").get<float>(),
                r.at("top_k").get<int>(), r.at("top_p").get<float>()};
    c.k = j.at("k").get<int>();
    c.chunk = j.at("chunk").get<std::vector<int>>();
    c.cuts = j.at("cuts").get<std::vector<int>>();
    c.order = j.at("order").get<std::vector<int>>();
    c.seq = j.value("seq", 0);
    c.twice = j.value("twice", false);
    if (!j.at("arch").is_null()) c.arch = config_from_json(j.at("arch").dump());
    c.arch_seed = j.value("arch_seed", uint64_t{0});
    c.coin_seed = j.value("coin_seed", uint64_t{0});
    check_case_shape(c);
    return c;
  } catch (const nlohmann::json::exception& e) {
    fail("case: {}", json_why(e));
  }
}

}  // namespace miniinfer::props
