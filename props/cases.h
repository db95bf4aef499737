// A test case of one property: everything needed to run it again, print it, save it as JSON
// for --replay, and turn it into a Scenario for the reporter.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "generators/prompts.h"
#include "model/model.h"
#include "props/engines.h"
#include "props/history.h"
#include "props/report.h"

namespace miniinfer::props {

struct Case {
  std::string property;                   // "p1" .. "p10"
  std::vector<std::vector<int>> prompts;  // one, or a batch
  gen::RunParams params;
  int k = 0;                  // p4: tokens decoded before the resumed chunk; p8: the rollback point, past the prompt
  std::vector<int> chunk;     // p4: the resumed chunk
  std::vector<int> cuts;      // p5: chunk boundaries of the prefill
  std::vector<int> order;     // p9: the batch order of the second run
  std::optional<Config> arch; // p10: a random architecture...
  uint64_t arch_seed = 0;     // ...with weights from this seed
  uint64_t coin_seed = 0;     // p12: which sampler edge each draw's coin sits beside, and how near
  // Filled in by the check when it fails:
  int seq = 0;                // the sequence that diverged
  bool twice = false;         // p9: the second run on one engine diverged
};

std::ostream& operator<<(std::ostream& os, const Case& c);

// Runs the property on the case; returns what differed, or nothing when the property holds.
std::optional<std::string> check_case(Case& c);
// The reporter's view of a failing case.
Failure report_case(const Case& c, const std::string& headline);

nlohmann::json case_to_json(const Case& c);
Case case_from_json(const nlohmann::json& j);  // throws Error naming the bad field
// A saved counterexample file as --replay reads it: a case or, for p11, a program, with the
// settings it was found under. Throws Error naming the problem, and no other exception,
// whatever the JSON holds (the fuzz target case_file_fuzz checks that).
struct SavedCase {
  bool is_program = false;
  Case c;
  Program program;
  std::string backend = "invariant", fault = "none", model_sha256;
  std::string engine = "miniinfer";
  nlohmann::json engine_settings;    // the engine's, checked by its read_saved (null for ours)
  std::string level = "bits";
};
SavedCase saved_case_from_json(const nlohmann::json& j);

// Throws Error unless the case's fields fit together (known property, prompts, cuts inside the
// prompt, order a permutation, bounded sizes); case_from_json calls it.
void check_case_shape(const Case& c);

}  // namespace miniinfer::props
