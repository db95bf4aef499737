// What the scripted properties (p1..p10, p12) share: a case's prompts and run parameters, the
// case file they are saved in, the draws that build them from the grammar, and the checks and
// report scenarios several of them use. Each property adds its own fields (props/properties/).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "generators/prompts.h"
#include "model/model.h"
#include "props/engines.h"
#include "props/report.h"

namespace miniinfer::props {

// The part of every scripted case: one prompt or a batch, and how to generate from it.
struct CaseCore {
  std::vector<std::vector<int>> prompts;  // one, or a batch
  gen::RunParams params;
  // Filled in by the check when it fails:
  int seq = 0;         // the sequence that diverged
  bool twice = false;  // p9: the second run on one engine diverged
};

// The case file as --replay reads it. Its fields are those of every scripted property (the
// format predates per-property cases and stays as it was, so every saved case replays); a
// property writes and reads its own, and the others keep their defaults.
struct CaseFields {
  std::string property;
  CaseCore core;
  int k = 0;                   // p4: tokens decoded before the resumed chunk; p8: the rollback point
  std::vector<int> chunk;      // p4: the resumed chunk
  std::vector<int> cuts;       // p5: chunk boundaries of the prefill
  std::vector<int> order;      // p9: the batch order of the second run
  std::optional<Config> arch;  // p10: a random architecture...
  uint64_t arch_seed = 0;      // ...with weights from this seed
  uint64_t coin_seed = 0;      // p12: where each draw's coin sits beside a sampler edge
  std::vector<int> threads;    // p14: the two runs' thread counts (written only when given)
  std::vector<std::vector<int>> drafts;  // p17: each round's draft, -1 for the target's own greedy token
                                         // (written only when given)
};
// With the run's model, engine, backend, fault and level, as a case file records them.
nlohmann::json case_file_json(const CaseFields& f);
// Throws Error naming the bad field; checks what every property's fields must satisfy (prompts,
// bounded sizes, cuts inside the prompt, order a permutation, arch within p10's range).
CaseFields case_fields_from_json(const nlohmann::json& j);

// ---- drawing cases from the grammar (inside a RapidCheck property) -------------------------

std::vector<int> ids_of(const gen::Prompt& p);
void tag(const gen::Prompt& p);  // the prompt's family, language, tense mix and length
// One grammatical prompt and run parameters for `new_tokens` tokens.
CaseCore draw_single(int new_tokens);
// A ragged batch of up to `max` prompts.
std::vector<std::vector<int>> draw_ragged_batch(int max);
// `fast` by default, `full` under --full.
int scaled(int fast, int full);

// ---- checking -------------------------------------------------------------------------------

GenerateOptions options_for(const CaseCore& c, bool cache);
// A script that appends `prompt` with the case's sampler and seed on coin stream `stream`.
Script base_script(const CaseCore& c, const std::vector<int>& prompt, uint64_t stream);
// The case's first prompt appended in chunks cut at `cuts` (ascending, inside the prompt), each
// chunk a forward call of its own, then max_new_tokens generated (p5, p15).
Script chunked_script(const CaseCore& c, const std::vector<int>& cuts);
// Two runs' tokens and logits at the run's level (level.h); the message names the finer level.
std::optional<std::string> judge_runs(const std::string& what, const std::vector<int>& ta, const std::vector<int>& tb,
                                      const std::vector<float>& la, const std::vector<float>& lb, int V);
// Cached against uncached generate(); `logits`: fail on logits too (p6), not only tokens (p1).
std::optional<std::string> check_cached_equals_uncached(EngineUnderTest& e, CaseCore& c, bool logits);
// Each sequence of the batch against its solo run, cached and uncached (p3, p10).
std::optional<std::string> check_batch(EngineUnderTest& e, CaseCore& c);
// A script's cached run against its uncached twin.
std::optional<std::string> check_scripts(EngineUnderTest& e, const Script& s, const char* what);
// Every K and V row of sequence `seq` against full recompute on `tokens` (p7, p10).
std::optional<std::string> check_slots(EngineUnderTest& subject, int seq, const std::vector<int>& tokens);
// Whether two rows are equal at the run's level.
bool rows_within(std::span<const float> a, std::span<const float> b);

// ---- reporting ------------------------------------------------------------------------------

// The cached runs that may explain a failing case, most direct first: the case's own script
// (for a batch, the batch and the solo run after it) and, last, the first one run twice.
std::vector<Scenario> standard_scenarios(const CaseCore& c, Script script, bool batch);
// The same for a case that generates from its prompts (a batch when it has several, or `batch`).
std::vector<Scenario> generate_scenarios(const CaseCore& c, bool batch = false);
// Where slot `slot` of `seq` lives on an engine with a prefix cache, for reports: "block 2 of
// sequence 3's table, physical block 7, offset 1, shared by 2, in the prefix cache"; "" on others.
std::string where_slot(EngineUnderTest& engine, int seq, int slot);
nlohmann::json where_slot_json(EngineUnderTest& engine, int seq, int slot);

// Tries each scenario on `engine` until one locates the difference.
Failure report_scenarios(EngineUnderTest& engine, const std::vector<Scenario>& scenarios, const std::string& property,
                         const std::string& headline);

}  // namespace miniinfer::props
