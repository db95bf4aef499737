// property_test: lab 02's property "generate with the cache equals generate without it, byte
// for byte" over 50 seeded grammatical prompts, plus the lab's extended runs (256 new tokens, a
// batch of 4, a q_len > 1 resume). Writes results.json and manifest.json; exits non-zero if
// any comparison fails. README.md in this folder describes the method and the result.
#include <fmt/format.h>
#include <rapidcheck.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "corpus/tokenizer.h"
#include "engine/generate.h"
#include "generators/prompts.h"
#include "lab_common.h"
#include "model/model_file.h"

namespace {

using namespace miniinfer;
using lab::Json;

// The experiment's fixed choices; README.md and the manifest state each one.
constexpr uint64_t kPromptSeed = 1;        // the prompt sampler's rc::Random seed
constexpr uint64_t kGenSeedBase = 42;      // prompt i samples with seed 42 + i
constexpr uint64_t kBatchSeedBase = 500;   // batch j samples with seed 500 + j
constexpr uint64_t kResumeSeedBase = 700;  // resume case i samples with seed 700 + i
constexpr int kNewTokens = 64;
constexpr int kLongTokens = 256;
constexpr int kLongStride = 5;  // the 256-token run takes prompts 0, 5, ..., 45
constexpr int kBatch = 4;
constexpr int kBatches = 10;          // batch j = prompts {j, 10+j, 20+j, 40+j}
constexpr int kResumeBefore = 4;      // tokens decoded before the resumed chunk
constexpr int kResumeAfter = 12;      // tokens sampled after it
constexpr float kTemperature = 0.8f;  // sampling, so that the seeds matter
constexpr int kRcSize = 0;            // our generators ignore RapidCheck's size

constexpr const char* kHelp =
    R"(property_test: lab 02's property, with-cache equals without-cache, byte for byte.

usage: property_test [--model FILE] [--out DIR] [--inject FAULT]

Draws 50 grammatical prompts (20 "<adverbial> <pronoun>", 20 partial sentences of 4-8 tokens,
10 mixed-tense prompts of 8-32 tokens) with the generators seeded 1, and generates 64 new
tokens for each, at temperature 0.8, with and without the KV cache. Compares the tokens, the
bytes of every step's logits, and every cached K/V row against full recompute. Then the
extended runs: 256 new tokens (prompts 0, 5, ..., 45), 10 batches of 4 (each sequence equals
its solo run on both paths), and 50 resumes (prompt, 4 decoded tokens, a q_len > 1 chunk,
12 more). Prints a line per prompt and `passed: N, failed: M`.

  --model FILE    model file (default: experiments/17-minigpt/minigpt.safetensors)
  --out DIR       where results.json and manifest.json go (default: this experiment's
                  folder; with --inject, nothing is written unless --out is given)
  --inject FAULT  run the cached path with a fault from the catalogue and report what the
                  comparisons catch (the lab's "document the bug" path)
  --help          this text

Exit status: 0 when every comparison holds, 1 when any fails, 2 on a usage or input error.
)";

struct Case {
  int index = 0;
  gen::Family family = gen::Family::AdverbialPronoun;
  std::string text;
  std::vector<int> ids;
  uint64_t seed = 0;
};

struct Draw {
  std::vector<Case> cases;
  int draws = 0;       // generator calls, duplicates included
  int duplicates = 0;  // prompts skipped because an earlier one had the same words
};

// The prompts: one rc::Random seeded kPromptSeed, split once per draw, feeds the three
// generators in turn (20 adverbial, 20 partial, 10 mixed); a prompt whose words repeat an
// earlier one is skipped, so the 50 are distinct.
Draw draw_cases(const Tokenizer& tokenizer) {
  struct Plan {
    gen::Family family;
    int count;
    rc::Gen<gen::Prompt> gen;
  };
  const std::vector<Plan> plan = {{gen::Family::AdverbialPronoun, 20, gen::genAdverbialPrompt()},
                                  {gen::Family::Partial, 20, gen::genPartialPrompt()},
                                  {gen::Family::MixedTense, 10, gen::genMixedTensePrompt()}};
  Draw out;
  rc::Random root(kPromptSeed);
  std::set<std::string> seen;
  for (const Plan& p : plan) {
    for (int n = 0; n < p.count;) {
      if (++out.draws > 10000)
        fail("prompt sampler: could not draw {} distinct {} prompts", p.count, to_string(p.family));
      const gen::Prompt prompt = p.gen(root.split(), kRcSize).value();
      const std::string text = prompt.text();
      if (!seen.insert(text).second) {
        ++out.duplicates;
        continue;
      }
      Case c;
      c.index = static_cast<int>(out.cases.size());
      c.family = p.family;
      c.text = text;
      c.ids = tokenizer.encode_words(prompt.words());
      c.seed = kGenSeedBase + static_cast<uint64_t>(c.index);
      out.cases.push_back(std::move(c));
      ++n;
    }
  }
  for (const Case& c : out.cases) {
    const int n = static_cast<int>(c.ids.size());
    const bool ok = c.family == gen::Family::AdverbialPronoun ? n >= 2
                    : c.family == gen::Family::Partial        ? n >= 4 && n <= 8
                                                              : n >= 8 && n <= 32;
    if (!ok)
      fail("prompt sampler: {} prompt \"{}\" has {} tokens, outside its family's range", to_string(c.family),
           c.text, n);
  }
  return out;
}

std::optional<int> first_token_difference(const std::vector<int>& a, const std::vector<int>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<int>(i);
  if (a.size() != b.size()) return static_cast<int>(n);
  return std::nullopt;
}

Json opt(std::optional<int> x) { return x ? Json(*x) : Json(nullptr); }

// The first cached K/V row of sequence `seq` that differs in a byte from what one full
// recompute of `fed` computes, or null if every (layer, head, slot) row is identical.
Json kv_difference(Engine& engine, int seq, const std::vector<int>& fed) {
  const int n = static_cast<int>(fed.size());
  if (engine.cursor(seq) != n) return Json{{"cursor", engine.cursor(seq)}, {"expected_cursor", n}};
  KvRows kv;
  engine.forward_uncached(fed, false, &kv);
  const Config& c = engine.config();
  for (int l = 0; l < c.n_layer; ++l)
    for (int h = 0; h < c.n_head; ++h)
      for (int s = 0; s < n; ++s)
        for (const char* tensor : {"K", "V"}) {
          const bool is_k = tensor[0] == 'K';
          const auto cached = is_k ? engine.cache().k_row(l, seq, h, s) : engine.cache().v_row(l, seq, h, s);
          const auto full = is_k ? kv.k_row(l, h, s) : kv.v_row(l, h, s);
          const lab::ByteDiff d = lab::compare_floats(cached, full);
          if (!d.identical())
            return Json{{"tensor", tensor},         {"layer", l},          {"head", h}, {"slot", s},
                        {"differing", d.differing}, {"max_ulp", d.max_ulp}};
        }
  return nullptr;
}

// One comparison of two token streams and their logits: where they first part, if anywhere.
struct Diff {
  std::optional<int> token_step, logits_step;
  bool same() const { return !token_step && !logits_step; }
  Json json() const {
    return Json{{"first_divergence_step", opt(token_step)},
                {"first_logits_divergence_step", opt(logits_step)}};
  }
};

Diff diff_runs(const std::vector<int>& ta, std::span<const float> la, const std::vector<int>& tb,
               std::span<const float> lb, int V) {
  Diff d;
  d.token_step = first_token_difference(ta, tb);
  if (auto i = lab::first_byte_difference(la, lb))
    d.logits_step = static_cast<int>(*i / static_cast<size_t>(V));
  return d;
}

struct Paths {
  std::vector<int> cached, uncached;
  Diff diff;
  Json kv = nullptr;
  std::string error;
  bool pass() const { return error.empty() && diff.same() && kv.is_null(); }
};

GenerateOptions options(uint64_t seed, int new_tokens, Fault fault) {
  GenerateOptions o;
  o.max_new_tokens = new_tokens;
  o.seed = seed;
  o.temperature = kTemperature;
  o.return_logits = true;
  o.fault = fault;
  return o;
}

// Both paths for one prompt. Each generate() call derives the prompt's coin stream afresh from
// (seed, 0): the lab's "reseed before each path" is built into the API. The cached path runs
// last, so its K/V rows are still in the engine for the row check.
Paths compare_paths(Engine& engine, const std::vector<int>& ids, uint64_t seed, int new_tokens, Fault fault) {
  Paths r;
  try {
    GenerateOptions o = options(seed, new_tokens, fault);
    o.cache = false;
    const GenerateResult full = generate(engine, {ids}, o);
    o.cache = true;
    const GenerateResult cached = generate(engine, {ids}, o);
    r.cached = cached.tokens[0];
    r.uncached = full.tokens[0];
    r.diff = diff_runs(r.cached, cached.logits[0], r.uncached, full.logits[0], engine.vocab_size());
    std::vector<int> fed = ids;
    fed.insert(fed.end(), r.cached.begin(), r.cached.end() - 1);  // the last token is never fed
    r.kv = kv_difference(engine, 0, fed);
  } catch (const Error& e) {
    r.error = e.what();  // a fault can make the engine refuse (e.g. a stale cache overflows)
  }
  return r;
}

void describe_failure(Json& j, const Paths& p) {
  if (!p.error.empty()) j["error"] = p.error;
  if (p.diff.token_step) j["uncached_ids"] = p.uncached;
}

std::string verdict(const Paths& p) {
  if (!p.error.empty()) return "ERROR " + p.error;
  std::string s =
      p.diff.token_step ? fmt::format("tokens DIFFER from step {}", *p.diff.token_step) : "tokens ok";
  s += p.diff.logits_step ? fmt::format(", logits DIFFER from step {}", *p.diff.logits_step) : ", logits ok";
  s += p.kv.is_null() ? ", kv ok" : ", kv DIFFER " + p.kv.dump();
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
double round_ms(double s) { return std::round(s * 1000.0) / 1000.0; }

struct Tally {
  int passed = 0, failed = 0;
  void add(bool ok) { ok ? ++passed : ++failed; }
  Json json() const { return Json{{"passed", passed}, {"failed", failed}}; }
};

// ---- The 50 prompts, 64 new tokens each. -------------------------------------------------------
struct MainRun {
  Json records = Json::array();
  Tally tally;
  std::vector<int> divergence_steps;
  int tokens_identical = 0, logits_identical = 0, kv_identical = 0;
  std::vector<std::vector<int>> tokens;  // cached tokens per prompt, for the 256-token prefix check
};

MainRun run_main(Engine& engine, const Tokenizer& tok, const std::vector<Case>& cases, Fault fault) {
  MainRun m;
  for (const Case& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    const Paths p = compare_paths(engine, c.ids, c.seed, kNewTokens, fault);
    m.tally.add(p.pass());
    if (p.diff.token_step) m.divergence_steps.push_back(*p.diff.token_step);
    const bool ok = p.error.empty();
    m.tokens_identical += ok && !p.diff.token_step;
    m.logits_identical += ok && !p.diff.logits_step;
    m.kv_identical += ok && p.kv.is_null();
    m.tokens.push_back(p.cached);
    std::printf("[%2d/%zu] %-17s seed %llu  %-60s %s (%.2f s)\n", c.index + 1, cases.size(),
                to_string(c.family), static_cast<unsigned long long>(c.seed), ("\"" + c.text + "\"").c_str(),
                ((p.pass() ? "pass: " : "FAIL: ") + verdict(p)).c_str(), seconds_since(t0));
    std::fflush(stdout);
    Json j;
    j["index"] = c.index;
    j["family"] = to_string(c.family);
    j["text"] = c.text;
    j["prompt_ids"] = c.ids;
    j["gen_seed"] = c.seed;
    j["pass"] = p.pass();
    j["tokens_identical"] = ok && !p.diff.token_step;
    j["logits_identical"] = ok && !p.diff.logits_step;
    j["kv_rows_identical"] = ok && p.kv.is_null();
    j["first_divergence_step"] = opt(p.diff.token_step);
    j["first_logits_divergence_step"] = opt(p.diff.logits_step);
    j["first_kv_difference"] = p.kv;
    j["generated_ids"] = p.cached;
    j["generated_text"] = p.cached.empty() ? "" : tok.decode(p.cached);
    describe_failure(j, p);
    m.records.push_back(std::move(j));
  }
  return m;
}

// ---- Extended: 256 new tokens on a subset. ------------------------------------------------------
Json run_long(Engine& engine, const std::vector<Case>& cases, const MainRun& main, Fault fault,
              Tally& tally) {
  Json records = Json::array();
  for (size_t i = 0; i < cases.size(); i += kLongStride) {
    const Case& c = cases[i];
    const auto t0 = std::chrono::steady_clock::now();
    const Paths p = compare_paths(engine, c.ids, c.seed, kLongTokens, fault);
    // Same seed and stream as the 64-token run, so its first 64 tokens must be that run's.
    const auto& short_run = main.tokens[i];
    const bool prefix = p.cached.size() >= short_run.size() &&
                        std::equal(short_run.begin(), short_run.end(), p.cached.begin());
    const bool ok = p.pass() && prefix;
    tally.add(ok);
    std::printf("[256 tokens] prompt %2d  %s%s%s (%.2f s)\n", c.index,
                ok ? "pass: " : "FAIL: ", verdict(p).c_str(),
                prefix ? ", first 64 = the 64-token run" : ", first 64 DIFFER from the 64-token run",
                seconds_since(t0));
    std::fflush(stdout);
    Json j{{"index", c.index}, {"gen_seed", c.seed}, {"pass", ok}};
    j.update(p.diff.json());
    j["first_kv_difference"] = p.kv;
    j["first_64_equal_64_token_run"] = prefix;
    j["generated_ids"] = p.cached;
    describe_failure(j, p);
    records.push_back(std::move(j));
  }
  return records;
}

// ---- Extended: batches of 4, each sequence against its solo runs. -------------------------------
std::vector<int> batch_members(int j) { return {j, 10 + j, 20 + j, 40 + j}; }

Json run_batches(Engine& engine, const std::vector<Case>& cases, Fault fault, Tally& tally) {
  Json records = Json::array();
  const int V = engine.vocab_size();
  for (int j = 0; j < kBatches; ++j) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> members = batch_members(j);
    const uint64_t seed = kBatchSeedBase + static_cast<uint64_t>(j);
    std::vector<std::vector<int>> prompts;
    for (int m : members) prompts.push_back(cases[static_cast<size_t>(m)].ids);
    Json batch{{"batch", j}, {"seed", seed}, {"members", members}};
    bool batch_ok = true;
    try {
      GenerateOptions o = options(seed, kNewTokens, fault);
      o.cache = false;
      const GenerateResult full = generate(engine, prompts, o);
      o.cache = true;
      const GenerateResult cached = generate(engine, prompts, o);
      std::vector<Json> kv(kBatch);
      for (int b = 0; b < kBatch; ++b) {
        std::vector<int> fed = prompts[static_cast<size_t>(b)];
        fed.insert(fed.end(), cached.tokens[static_cast<size_t>(b)].begin(),
                   cached.tokens[static_cast<size_t>(b)].end() - 1);
        kv[static_cast<size_t>(b)] = kv_difference(engine, b, fed);
      }
      Json seqs = Json::array();
      for (int b = 0; b < kBatch; ++b) {
        const size_t ub = static_cast<size_t>(b);
        // Sequence b of the batch draws from stream (seed, b); so does the solo run with first_stream b.
        GenerateOptions so = options(seed, kNewTokens, fault);
        so.first_stream = ub;
        so.cache = false;
        const GenerateResult solo_full = generate(engine, {prompts[ub]}, so);
        so.cache = true;
        const GenerateResult solo_cached = generate(engine, {prompts[ub]}, so);
        const Diff cu = diff_runs(cached.tokens[ub], cached.logits[ub], full.tokens[ub], full.logits[ub], V);
        const Diff cs =
            diff_runs(cached.tokens[ub], cached.logits[ub], solo_cached.tokens[0], solo_cached.logits[0], V);
        const Diff us =
            diff_runs(full.tokens[ub], full.logits[ub], solo_full.tokens[0], solo_full.logits[0], V);
        const bool ok = cu.same() && cs.same() && us.same() && kv[ub].is_null();
        batch_ok = batch_ok && ok;
        tally.add(ok);
        seqs.push_back(Json{{"index", members[ub]},
                            {"stream", b},
                            {"pass", ok},
                            {"batch_cached_vs_batch_uncached", cu.json()},
                            {"batch_cached_vs_solo_cached", cs.json()},
                            {"batch_uncached_vs_solo_uncached", us.json()},
                            {"first_kv_difference", kv[ub]},
                            {"generated_ids", cached.tokens[ub]}});
      }
      batch["sequences"] = std::move(seqs);
    } catch (const Error& e) {
      batch_ok = false;
      for (int b = 0; b < kBatch; ++b) tally.add(false);
      batch["error"] = e.what();
    }
    batch["pass"] = batch_ok;
    std::printf("[batch of 4] batch %d, prompts %d %d %d %d: %s (%.2f s)\n", j, members[0], members[1],
                members[2], members[3],
                batch_ok ? "pass"
                         : ("FAIL " + (batch.contains("error") ? batch["error"].get<std::string>()
                                                               : std::string("(see results.json)")))
                               .c_str(),
                seconds_since(t0));
    std::fflush(stdout);
    records.push_back(std::move(batch));
  }
  return records;
}

// ---- Extended: resume, a q_len > 1 chunk on a non-empty cache. ----------------------------------
// The schedule: prompt, kResumeBefore sampled-and-decoded tokens, `chunk` appended in one
// pass, then kResumeAfter sampled tokens. Each path records the logits row of every position it
// computes (the chunk's every row), in position order, and samples from its own rows.
struct ResumeRun {
  std::vector<int> tokens;     // the sampled tokens
  std::vector<int> fed;        // every token that went through forward
  std::vector<float> rows;     // logits rows, in the order computed
  std::vector<int> positions;  // the absolute position of each row
};

ResumeRun resume_path(Engine& engine, bool cached, const std::vector<int>& prompt,
                      const std::vector<int>& chunk, uint64_t seed) {
  const size_t V = static_cast<size_t>(engine.vocab_size());
  const SamplerOptions sampler{kTemperature, 0, 1.0f};
  SamplerScratch scratch;
  Rng coins = Rng::stream(seed, 0);
  ResumeRun r;
  auto feed = [&](const std::vector<int>& tokens, bool all_rows) {
    const size_t before = r.fed.size();
    r.fed.insert(r.fed.end(), tokens.begin(), tokens.end());
    std::vector<float> rows =
        cached ? engine.forward_cached(0, tokens, all_rows) : engine.forward_uncached(r.fed, all_rows);
    if (!cached && all_rows) rows.erase(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(before * V));
    const size_t n = rows.size() / V;
    for (size_t i = 0; i < n; ++i) r.positions.push_back(static_cast<int>(r.fed.size() - n + i));
    r.rows.insert(r.rows.end(), rows.begin(), rows.end());
  };
  auto draw = [&] {
    const std::span<const float> last(r.rows.data() + r.rows.size() - V, V);
    r.tokens.push_back(sample(last, sampler, coins.uniform(), scratch));
    return r.tokens.back();
  };
  feed(prompt, false);  // prefill (cached) or full recompute
  for (int i = 0; i < kResumeBefore; ++i) feed({draw()}, false);
  feed(chunk, true);  // the resume: q_len = chunk.size() > 1 on a non-empty cache
  for (int i = 0; i < kResumeAfter; ++i) {
    const int t = draw();
    if (i + 1 < kResumeAfter) feed({t}, false);
  }
  return r;
}

Json run_resumes(Engine& engine, const std::vector<Case>& cases, Fault fault, Tally& tally) {
  Json records = Json::array();
  const int V = engine.vocab_size();
  for (const Case& c : cases) {
    const std::vector<int>& chunk = cases[(static_cast<size_t>(c.index) + 1) % cases.size()].ids;
    const uint64_t seed = kResumeSeedBase + static_cast<uint64_t>(c.index);
    Json j{{"index", c.index}, {"seed", seed}, {"chunk_ids", chunk}};
    bool ok = false;
    try {
      engine.set_backend(Backend::Invariant);
      engine.set_fault(fault);
      engine.reset();
      const ResumeRun cached = resume_path(engine, true, c.ids, chunk, seed);
      const ResumeRun full = resume_path(engine, false, c.ids, chunk, seed);
      const Diff d = diff_runs(cached.tokens, cached.rows, full.tokens, full.rows, V);
      const Json kv = kv_difference(engine, 0, cached.fed);
      ok = d.same() && kv.is_null() && cached.positions == full.positions;
      j["pass"] = ok;
      j["first_divergence_step"] = opt(d.token_step);
      // Logits rows are compared in computation order; name the position of the first that differs.
      j["first_logits_divergence_position"] =
          d.logits_step ? Json(cached.positions[static_cast<size_t>(*d.logits_step)]) : Json(nullptr);
      j["first_kv_difference"] = kv;
      j["generated_ids"] = cached.tokens;
      if (d.token_step) j["uncached_ids"] = full.tokens;
    } catch (const Error& e) {
      j["pass"] = false;
      j["error"] = e.what();
    }
    tally.add(ok);
    if (!ok) std::printf("[resume] prompt %2d: FAIL %s\n", c.index, j.dump().c_str());
    records.push_back(std::move(j));
  }
  std::printf("[resume] %d of %zu pass\n", tally.passed, cases.size());
  return records;
}

Json model_config_json(const Config& c) {
  return Json{{"vocab_size", c.vocab_size},  {"d_model", c.d_model}, {"n_layer", c.n_layer},
              {"n_head", c.n_head},          {"d_head", c.d_head()}, {"d_ff", c.d_ff},
              {"max_seq_len", c.max_seq_len}};
}

int run(int argc, char** argv) {
  const lab::Flags flags(argc, argv, {"model", "out", "inject"}, {"help"});
  if (flags.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const Fault fault = fault_from_name(flags.get("inject", "none"));
  const bool write = fault == Fault::None || flags.has("out");
  const std::string out_dir = flags.get("out", lab::experiment_dir("22-cache-correctness"));
  const std::string model_path = flags.get("model", lab::default_model_path());
  const auto t_start = std::chrono::steady_clock::now();

  const Model model = read_model(model_path);
  const std::string sha = file_sha256(model_path);
  const Tokenizer tokenizer(model.vocab);
  const Draw draw = draw_cases(tokenizer);
  const std::vector<Case>& cases = draw.cases;
  std::printf(
      "property_test: model %s (sha256 %.16s...), %zu prompts (%d draws, %d duplicates skipped), "
      "temperature %.1f, fault %s\n",
      lab::display_path(model_path).c_str(), sha.c_str(), cases.size(), draw.draws, draw.duplicates,
      static_cast<double>(kTemperature), to_string(fault));
  Engine engine(model, {Backend::Invariant, kBatch, 0, Fault::None, KvLayout::Contiguous, {}});

  auto t0 = std::chrono::steady_clock::now();
  const MainRun main = run_main(engine, tokenizer, cases, fault);
  const double t_main = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  Tally long_tally, batch_tally, resume_tally;
  Json long_records = run_long(engine, cases, main, fault, long_tally);
  const double t_long = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  Json batch_records = run_batches(engine, cases, fault, batch_tally);
  const double t_batch = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  Json resume_records = run_resumes(engine, cases, fault, resume_tally);
  const double t_resume = seconds_since(t0);
  const double t_total = seconds_since(t_start);

  const auto [len_min, len_max] = std::minmax_element(
      cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.ids.size() < b.ids.size(); });
  std::vector<int> long_indices;
  for (size_t i = 0; i < cases.size(); i += kLongStride) long_indices.push_back(static_cast<int>(i));
  std::vector<std::vector<int>> batches;
  for (int j = 0; j < kBatches; ++j) batches.push_back(batch_members(j));

  Json summary;
  summary["passed"] = main.tally.passed;
  summary["failed"] = main.tally.failed;
  const auto [dmin, dmax] = std::minmax_element(main.divergence_steps.begin(), main.divergence_steps.end());
  summary["first_divergence_step_min"] = main.divergence_steps.empty() ? Json(nullptr) : Json(*dmin);
  summary["first_divergence_step_max"] = main.divergence_steps.empty() ? Json(nullptr) : Json(*dmax);
  summary["tokens_identical"] = main.tokens_identical;
  summary["logits_identical"] = main.logits_identical;
  summary["kv_rows_identical"] = main.kv_identical;
  summary["extended"] =
      Json{{"long_256", long_tally.json()}, {"batch_4", batch_tally.json()}, {"resume", resume_tally.json()}};

  Json config;
  config["model"] = "miniGPT-phase17";
  config["model_file"] = lab::display_path(model_path);
  config["model_sha256"] = sha;
  config["model_config"] = model_config_json(model.config);
  config["n_prompts"] = cases.size();
  config["families"] = Json{{"adverbial+pronoun", 20}, {"partial", 20}, {"mixed-tense", 10}};
  config["prompt_len_range"] = {len_min->ids.size(), len_max->ids.size()};
  config["max_new_tokens"] = kNewTokens;
  config["batch_size"] = 1;
  // The float 0.8f, written as the shortest decimal that reads back to it.
  config["sampling"] =
      Json{{"temperature", std::stod(fmt::format("{}", kTemperature))}, {"top_k", 0}, {"top_p", 1.0}};
  config["backend"] = "invariant";
  config["fault"] = to_string(fault);
  config["pass_rule"] =
      "tokens, every step's logits bytes and every cached K/V row identical to full recompute";
  config["extended"] = Json{{"long",
                             {{"max_new_tokens", kLongTokens},
                              {"prompts", long_indices},
                              {"seed_rule", "42 + prompt index (as the 64-token run)"}}},
                            {"batch",
                             {{"batch_size", kBatch},
                              {"max_new_tokens", kNewTokens},
                              {"batches", batches},
                              {"seed_rule", "500 + batch index; sequence b draws from stream b"}}},
                            {"resume",
                             {{"prompts", "all 50"},
                              {"decoded_before_chunk", kResumeBefore},
                              {"sampled_after_chunk", kResumeAfter},
                              {"chunk", "the ids of prompt (i + 1) mod 50"},
                              {"seed_rule", "700 + prompt index"}}}};

  Json manifest;
  manifest["experiment"] = "22-cache-correctness";
  manifest["date"] = lab::today_utc();
  manifest["seed_prompt_sampler"] = kPromptSeed;
  manifest["seed_generation_per_prompt"] = "deterministic_from_prompt_idx";
  manifest["seed_generation_rule"] =
      "prompt i (0-based) samples with seed 42 + i; each path draws its coins from Rng::stream(42 + i, 0), "
      "derived afresh at the start of the path";
  manifest["versions"] = lab::versions();
  manifest["config"] = config;
  manifest["results_summary"] = summary;
  manifest["wall_time_seconds"] = round_ms(t_total);

  Json results;
  results["experiment"] = "22-cache-correctness";
  results["model_sha256"] = sha;
  results["fault"] = to_string(fault);
  results["prompt_sampler"] =
      Json{{"seed", kPromptSeed}, {"draws", draw.draws}, {"duplicates_skipped", draw.duplicates}};
  results["prompts"] = main.records;
  results["extended"] =
      Json{{"long_256", long_records}, {"batch_4", batch_records}, {"resume", resume_records}};
  results["summary"] = summary;
  results["wall_time_seconds"] = Json{{"prompts_64", round_ms(t_main)},
                                      {"long_256", round_ms(t_long)},
                                      {"batch_4", round_ms(t_batch)},
                                      {"resume", round_ms(t_resume)},
                                      {"total", round_ms(t_total)}};

  const int extended_failed = long_tally.failed + batch_tally.failed + resume_tally.failed;
  std::printf("times: 64 tokens %.1f s, 256 tokens %.1f s, batch %.1f s, resume %.1f s, total %.1f s\n",
              t_main, t_long, t_batch, t_resume, t_total);
  std::printf("extended: 256 tokens %d/%zu pass, batch of 4 %d/%d sequences pass, resume %d/%zu pass\n",
              long_tally.passed, long_indices.size(), batch_tally.passed, kBatches * kBatch,
              resume_tally.passed, cases.size());
  if (write) {
    lab::ensure_dir(out_dir);
    lab::write_json(out_dir + "/results.json", results);
    lab::write_json(out_dir + "/manifest.json", manifest);
    std::printf("wrote %s/results.json and manifest.json\n", out_dir.c_str());
  } else {
    std::printf("not writing artifacts: --inject without --out leaves the committed results alone\n");
  }
  std::printf("passed: %d, failed: %d%s\n", main.tally.passed, main.tally.failed,
              extended_failed ? fmt::format(" (extended runs: {} failed)", extended_failed).c_str() : "");
  return main.tally.failed + extended_failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "property_test: %s\n", e.what());
    return 2;
  }
}
