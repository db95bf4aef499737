#include "props/case_core.h"

#include <rapidcheck.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"
#include "model/model_file.h"
#include "model/safetensors.h"
#include "props/context.h"
#include "props/json_fields.h"
#include "props/level.h"

namespace miniinfer::props {

// ---- the case file --------------------------------------------------------------------------

nlohmann::json case_file_json(const CaseFields& f) {
  const Context& ctx = context();
  const CaseCore& c = f.core;
  nlohmann::json prompts = nlohmann::json::array();
  for (const auto& p : c.prompts) prompts.push_back({{"text", ctx.tokenizer->decode(p)}, {"ids", p}});
  nlohmann::json j = {{"property", f.property},
          {"prompts", prompts},
          {"params", {{"seed", c.params.seed}, {"max_new_tokens", c.params.max_new_tokens},
                      {"temperature", c.params.temperature}, {"top_k", c.params.top_k}, {"top_p", c.params.top_p}}},
          {"k", f.k}, {"chunk", f.chunk}, {"cuts", f.cuts}, {"order", f.order},
          {"seq", c.seq}, {"twice", c.twice},
          {"model", ctx.model_label}, {"model_sha256", ctx.model_sha256},
          {"backend", to_string(ctx.backend)}, {"fault", to_string(ctx.fault)},
          {"engine", ctx.subject ? ctx.subject->name() : "miniinfer"},
          {"engine_settings", ctx.subject ? ctx.subject->settings() : nlohmann::json::object()},
          {"level", to_string(run_level())},
          {"arch", f.arch ? nlohmann::json::parse(config_to_json(*f.arch)) : nlohmann::json(nullptr)},
          {"arch_seed", f.arch_seed}, {"coin_seed", f.coin_seed}};
  if (!f.threads.empty()) j["threads"] = f.threads;  // cases saved before p14 keep their bytes
  if (!f.drafts.empty()) j["drafts"] = f.drafts;     // and before p17
  return j;
}

namespace {

// What a saved case must satisfy before any property indexes with it: a hand-edited or damaged
// file gets a one-line Error, never an out-of-range read (the fuzz target case_file_fuzz holds
// this to account). Token ids and lengths are the engine's to check, against the model; what
// only one property needs (p4's chunk, p8's rollback point) its own reader checks.
void check_fields(const CaseFields& f) {
  const CaseCore& c = f.core;
  if (c.prompts.empty()) fail("case: no prompts");
  if (c.prompts.size() > static_cast<size_t>(kBatch)) fail("case: {} prompts, more than {}", c.prompts.size(), kBatch);
  for (size_t i = 0; i < c.prompts.size(); ++i)
    if (c.prompts[i].empty()) fail("case: prompt {} is empty", i);
  constexpr int kMaxNew = 4096;
  if (c.params.max_new_tokens < 0 || c.params.max_new_tokens > kMaxNew)
    fail("case: max_new_tokens {} outside 0..{}", c.params.max_new_tokens, kMaxNew);
  if (f.k < 0 || f.k > kMaxNew) fail("case: k {} outside 0..{}", f.k, kMaxNew);
  const int len = static_cast<int>(c.prompts[0].size());
  for (size_t i = 0; i < f.cuts.size(); ++i)
    if (f.cuts[i] <= (i ? f.cuts[i - 1] : 0) || f.cuts[i] >= len)
      fail("case: cuts must rise strictly inside the prompt's 1..{}, got {} at {}", len - 1, f.cuts[i], i);
  if (!f.order.empty()) {
    std::vector<int> sorted(f.order);
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sorted.size() != c.prompts.size() || sorted[i] != static_cast<int>(i))
        fail("case: order is not a permutation of the {} prompts", c.prompts.size());
  }
  if (c.seq < 0 || c.seq >= static_cast<int>(c.prompts.size()))
    fail("case: seq {} outside 0..{}", c.seq, c.prompts.size() - 1);
  if (f.arch) {  // as p10 draws them, with room: a file cannot ask for a huge model
    f.arch->validate();
    if (f.arch->n_layer > 8 || f.arch->d_model > 1024 || f.arch->d_ff > 4096 || f.arch->max_seq_len > 1024)
      fail("case: arch {} is larger than p10 draws (n_layer <= 8, d_model <= 1024, d_ff <= 4096, max_seq_len <= 1024)",
           config_to_json(*f.arch));
    if (context().tokenizer && f.arch->vocab_size != static_cast<int>(context().model.vocab.size()))
      fail("case: arch vocab_size {} is not the model's {}", f.arch->vocab_size, context().model.vocab.size());
  }
}

}  // namespace

CaseFields case_fields_from_json(const nlohmann::json& j) {
  CaseFields f;
  f.property = j.at("property").get<std::string>();
  CaseCore& c = f.core;
  const auto& prompts = j.at("prompts");
  if (!prompts.is_array()) fail("case: prompts: not an array");
  for (size_t i = 0; i < prompts.size(); ++i)
    c.prompts.push_back(json_ints(prompts[i].at("ids"), fmt::format("prompts[{}].ids", i)));
  const auto& r = j.at("params");
  c.params = {json_u64(r.at("seed"), "params.seed"), json_int(r.at("max_new_tokens"), "params.max_new_tokens"),
              json_float(r.at("temperature"), "params.temperature"), json_int(r.at("top_k"), "params.top_k"),
              json_float(r.at("top_p"), "params.top_p")};
  f.k = json_int(j.at("k"), "k");
  f.chunk = json_ints(j.at("chunk"), "chunk");
  f.cuts = json_ints(j.at("cuts"), "cuts");
  f.order = json_ints(j.at("order"), "order");
  c.seq = json_int(j.value("seq", nlohmann::json(0)), "seq");
  c.twice = j.value("twice", false);
  if (!j.at("arch").is_null()) f.arch = config_from_json(j.at("arch").dump());
  f.arch_seed = json_u64(j.value("arch_seed", nlohmann::json(0)), "arch_seed");
  f.coin_seed = json_u64(j.value("coin_seed", nlohmann::json(0)), "coin_seed");
  f.threads = json_ints(j.value("threads", nlohmann::json::array()), "threads");
  const nlohmann::json drafts = j.value("drafts", nlohmann::json::array());
  if (!drafts.is_array()) fail("case: drafts: not an array");
  for (size_t i = 0; i < drafts.size(); ++i) f.drafts.push_back(json_ints(drafts[i], fmt::format("drafts[{}]", i)));
  check_fields(f);
  return f;
}

// ---- drawing --------------------------------------------------------------------------------

std::vector<int> ids_of(const gen::Prompt& p) { return context().tokenizer->encode_words(p.words()); }

void tag(const gen::Prompt& p) {
  for (const auto& t : gen::tags_of(p)) RC_TAG(t);
}

CaseCore draw_single(int new_tokens) {
  CaseCore c;
  const gen::Prompt p = *gen::genPrompt();
  tag(p);
  c.prompts = {ids_of(p)};
  c.params = *gen::genRunParams(new_tokens);
  return c;
}

std::vector<std::vector<int>> draw_ragged_batch(int max) {
  const auto prompts = *rc::gen::container<std::vector<gen::Prompt>>(
      static_cast<size_t>(*gen::genBatchSize(max)), gen::genPrompt());
  std::vector<std::vector<int>> out;
  tag(prompts.front());  // one prompt's tags per case, so the shares add up to 100%
  for (const auto& p : prompts) out.push_back(ids_of(p));
  if (out.size() >= 2) RC_TAG("batched");
  return out;
}

int scaled(int fast, int full) { return run_config().full ? full : fast; }

// ---- checking -------------------------------------------------------------------------------

bool rows_within(std::span<const float> a, std::span<const float> b) {
  if (std::memcmp(a.data(), b.data(), a.size_bytes()) == 0) return true;
  const uint64_t allowed = run_level().allowed_ulp();
  if (run_level().kind == Level::Bits) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ulp_distance(a[i], b[i]) > allowed) return false;
  return true;
}

GenerateOptions options_for(const CaseCore& c, bool cache) {
  GenerateOptions o = base_options();
  o.max_new_tokens = c.params.max_new_tokens;
  o.seed = c.params.seed;
  o.temperature = c.params.temperature;
  o.top_k = c.params.top_k;
  o.top_p = c.params.top_p;
  o.cache = cache;
  return o;
}

Script base_script(const CaseCore& c, const std::vector<int>& prompt, uint64_t stream) {
  Script s;
  s.seed = c.params.seed;
  s.stream = stream;
  s.sampler = {c.params.temperature, c.params.top_k, c.params.top_p};
  s.ops.push_back({Op::Append, prompt, 0, 0});
  return s;
}

Script chunked_script(const CaseCore& c, const std::vector<int>& cuts) {
  Script s;
  s.seed = c.params.seed;
  s.sampler = {c.params.temperature, c.params.top_k, c.params.top_p};
  const auto& prompt = c.prompts[0];
  int from = 0;
  for (int cut : cuts) {
    s.ops.push_back({Op::Append, std::vector<int>(prompt.begin() + from, prompt.begin() + cut), 0, 0});
    s.ops.push_back({Op::Forward, {}, 0, 0});
    from = cut;
  }
  s.ops.push_back({Op::Append, std::vector<int>(prompt.begin() + from, prompt.end()), 0, 0});
  s.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  return s;
}

std::optional<std::string> judge_runs(const std::string& what, const std::vector<int>& ta, const std::vector<int>& tb,
                                      const std::vector<float>& la, const std::vector<float>& lb, int V) {
  return judge(what, compare_runs(ta, tb, la, lb, V), V, &la, &lb);
}

std::optional<std::string> check_slots(EngineUnderTest& subject, int seq, const std::vector<int>& tokens) {
  const int n = subject.cursor(seq);
  if (n > static_cast<int>(tokens.size()))
    return fmt::format("sequence {}'s cursor is {}, past the {} tokens it was given", seq, n, tokens.size());
  const auto held = subject.cache_rows(seq);
  const auto ref = subject.recompute_rows(std::span<const int>(tokens).first(static_cast<size_t>(n)));
  if (!held || !ref) fail("engine {} has no {}", subject.name(), to_string(Capability::KvRows));
  const Config& cf = subject.config();
  for (int s = 0; s < n; ++s)
    for (int l = 0; l < cf.n_layer; ++l)
      for (int h = 0; h < cf.n_head; ++h) {
        if (!held->holds(s)) continue;  // a sliding window's dropped position
        if (!rows_within(held->k_row(l, h, s), ref->k_row(l, h, s)))
          return fmt::format("cache K row differs from full recompute at layer {}, head {}, slot {}", l, h, s);
        if (!rows_within(held->v_row(l, h, s), ref->v_row(l, h, s)))
          return fmt::format("cache V row differs from full recompute at layer {}, head {}, slot {}", l, h, s);
      }
  return std::nullopt;
}

// p1/p2 (logits = false) are token properties, but the logits are compared anyway to say at which
// finer level a passing case parted; they fail on logits only at the bits and ulp levels.
std::optional<std::string> check_cached_equals_uncached(EngineUnderTest& e, CaseCore& c, bool logits) {
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

std::optional<std::string> check_batch(EngineUnderTest& e, CaseCore& c) {
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

// ---- reporting ------------------------------------------------------------------------------

std::vector<Scenario> standard_scenarios(const CaseCore& c, Script script, bool batch) {
  const size_t seq = std::min(static_cast<size_t>(c.seq), c.prompts.size() - 1);
  Scenario sc;
  sc.batch_options = options_for(c, true);
  sc.script = std::move(script);
  std::vector<Scenario> out;
  if (batch) {
    Scenario b = sc;
    b.batch = c.prompts;
    b.seq = static_cast<int>(seq);
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

std::vector<Scenario> generate_scenarios(const CaseCore& c, bool batch) {
  const size_t seq = std::min(static_cast<size_t>(c.seq), c.prompts.size() - 1);
  Script script = base_script(c, c.prompts[seq], seq);
  script.ops.push_back({Op::Generate, {}, c.params.max_new_tokens, 0});
  return standard_scenarios(c, std::move(script), batch || c.prompts.size() > 1);
}

Failure report_scenarios(EngineUnderTest& engine, const std::vector<Scenario>& scenarios, const std::string& property,
                         const std::string& headline) {
  Failure f;
  for (const Scenario& sc : scenarios) {
    engine.clean_slate();
    try {
      f = diagnose(engine, sc, property, headline, context().model.vocab);
    } catch (const std::exception& e) {
      f.property = property;
      f.headline = headline;
      f.text = fmt::format("  {}\n  the traced re-run stopped with an error: {}\n", headline, e.what());
      f.json = {{"property", property}, {"headline", headline}, {"error", e.what()}};
      f.located = true;
    }
    if (f.located) break;
  }
  return f;
}

std::string where_slot(EngineUnderTest& e, int seq, int slot) {
  if (!e.has(Capability::PrefixCache)) return "";
  if (e.block_table(seq).empty() && !e.preempted(seq))  // an engine that shows no blocks (over the protocol)
    return fmt::format("block {} of blocks of {}, offset {}; the engine does not show where its blocks lie",
                       slot / e.prefix_block(), e.prefix_block(), slot % e.prefix_block());
  const BlockSlot b = e.locate(seq, slot);
  if (b.physical < 0)
    return fmt::format("block {} of sequence {}'s table, offset {}, no physical block (preempted)", b.logical, seq,
                       b.offset);
  return fmt::format("block {} of sequence {}'s table, physical block {}, offset {}, {}{}", b.logical, seq, b.physical,
                     b.offset, b.refs == 1 ? std::string("held by this table alone") : fmt::format("shared by {}", b.refs),
                     b.registered ? ", in the prefix cache" : "");
}

nlohmann::json where_slot_json(EngineUnderTest& e, int seq, int slot) {
  if (!e.has(Capability::PrefixCache)) return nullptr;
  const BlockSlot b = e.locate(seq, slot);
  return {{"logical", b.logical}, {"physical", b.physical}, {"offset", b.offset}, {"refs", b.refs},
          {"registered", b.registered}};
}

}  // namespace miniinfer::props
