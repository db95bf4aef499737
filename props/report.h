// The reporter: for a failing case, where did the cached path and full recompute part? It
// finds the first step whose logits differ in any bit and the first whose token differs,
// re-runs both paths with tracing at that step, and diffs every (layer, head) component:
// q, k, v after RoPE, the cache rows attention read, the attention probabilities, the head
// output and the block output. The result is a table, a one-line verdict and JSON, from which
// publish_failure draws the heatmap (heatmap.h) and the HTML report (report_html.h).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/generate.h"
#include "props/scenario.h"

namespace miniinfer::props {

// How to run the failing case's cached path for one sequence. The reference is always the
// uncached twin of `script` (for a batch case, `script` is that sequence's solo script).
struct Scenario {
  Script script;
  std::vector<std::vector<int>> batch;  // non-empty: the cached path is generate() on this batch
  int seq = 0;                          // the sequence (of the batch) that diverged
  GenerateOptions batch_options;        // for the batch run
  bool twice = false;                   // the cached run is the second of two on one engine
  std::vector<std::vector<int>> warmup;  // prompts generate() runs (cached) before the cached run
  // Other sequences' tokens in the shared cache before the cached run, each prefilled in a call
  // of its own (forward_cached): (sequence, tokens). The outside reporter asks whether the
  // parting needs them (props/cross_sequence.h).
  std::vector<std::pair<int, std::vector<int>>> resident;
};

struct Failure {
  std::string property;
  std::string headline;      // one line: what differed
  std::string text;          // the human report
  nlohmann::json json;       // the report as data
  nlohmann::json case_json;  // for props --replay
  bool located = false;      // the scenario showed a difference (logits or cache rows)
};

// Runs the scenario on `engine` and diagnoses it. `headline` is the property's own finding. An
// engine with K/V rows (ours) gets the full report: every traced component of the parting call
// and every cache slot against full recompute; any other engine the outside one.
Failure diagnose(EngineUnderTest& engine, const Scenario& scenario, const std::string& property,
                 const std::string& headline, const std::vector<std::string>& vocab);

// The report for an engine without K/V rows: the first draw whose logits or token part and,
// when the engine traces its calls, the first tensor that differs, per layer and head, and
// whether a kernel depends on the batch size (report_outside.cpp).
Failure diagnose_outside(EngineUnderTest& engine, const Scenario& scenario, const std::string& property,
                         const std::string& headline, const std::vector<std::string>& vocab);

// The cached path of a batch scenario (generate() on sc.batch) as the ScriptRun of sequence
// sc.seq. With a trace: traced_draw < 0, every call of the run (GenerateOptions::trace, steps
// stamped); otherwise only the call of draw `traced_draw` (call k computes draw k), through
// the engine's trace_call.
ScriptRun run_batch(EngineUnderTest& engine, const Scenario& sc, int max_new_tokens, Trace* trace = nullptr,
                    int traced_draw = -1);

// One traced cached call against a traced full recompute: the rows of sequence `seq` in call
// `call` at reference positions `positions` (the cached path put them `shift` slots later),
// diffed component by component: the first parting, a verdict and the (layer, head) table.
struct CallDiff {
  std::string text;
  // first_parting, verdict, table, parting_rows, and the cause ("forward", "poison",
  // "cross-sequence", "cursor", "bookkeeping"; absent when nothing differs) with its details
  // ("cursor", "bookkeeping", "cross_sequence")
  nlohmann::json json;
};
CallDiff diff_traced_call(const Trace& reference, const Trace& cached, int call, int seq,
                          const std::vector<int>& positions, int shift, int L, int H,
                          std::string_view kv_dtype = "f32");  // the engine's (verdict.h)

// A parting in the sampler: at `step` both loops' logits are bit-identical and their tokens
// differ. `coin` is the step's own coin, `cached_coin` the one the cached loop drew with when it
// is known, `sample_gives` what sample() draws from those logits with `coin`.
struct SamplerParting {
  int step = 0;
  float coin = 0.0f;
  std::optional<float> cached_coin;
  int cached_token = 0, recompute_token = 0, sample_gives = 0;
};
// Its lines (the step, the coin, both tokens; the coin the cached loop used instead, or what
// sample() gives) and the verdict line, appended to `text`; j's "sampler", "cause" and
// "verdict". `word` names a token. The one report of a sampler parting (diagnose, p12).
void report_sampler_parting(const SamplerParting& s, const std::function<std::string(int)>& word, std::string& text,
                            nlohmann::json& j);

// Distance in units in the last place between two floats (0 when bit-identical; NaNs far).
uint64_t ulp_distance(float a, float b);

// Prints the report and writes DIR/ID.report.json, .report.txt, .heatmap.svg (drawn from the
// JSON), .report.html and .case.json. `reproduce` (the run's reproduce command, when there is
// one) goes into the HTML report only: a replay's JSON equals the original's byte for byte.
void publish_failure(const std::string& id, const Failure& failure, const std::string& reproduce = "");

}  // namespace miniinfer::props
