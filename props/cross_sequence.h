// Causes in another sequence (issue 28): when a scenario with several sequences parts (a batch
// whose sequences share each call, or other sequences' tokens resident in a shared cache), the
// cached run is repeated with each other sequence removed in turn. If the parting goes away
// without sequence j, the cause is "cross-sequence": the parting needs sequence j.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "props/report.h"

namespace miniinfer::props {

struct CrossSequence {
  int seq = 0;            // the sequence whose cached run parts from full recompute
  int needs_seq = -1;     // the sequence it needs; -1: only all the others together
  std::string operation;  // how the other sequence takes part: "forward_batch", "resident"
  std::string sentence;   // "the parting needs sequence 1's chunk in the same call (...)"
};

// The scenario's resident tokens prefilled into the cache, each sequence in its own call
// (forward_cached), as the property left them before the script ran.
void prefill_resident(EngineUnderTest& engine, const Scenario& sc);

// What the cached run of `sc` starts from: a clean slate, the resident tokens, the warmup.
void start_scenario(EngineUnderTest& engine, const Scenario& sc);

// The cached run of `sc` from a clean slate (residents, warmup, the batch or the script, twice
// if so), no trace.
ScriptRun cached_scenario_run(EngineUnderTest& engine, const Scenario& sc);

// Whether `sc`'s parting needs another sequence: nullopt when the scenario has no other
// sequence, does not part, or still parts without each other sequence and without all of them.
// Leaves the engine dirty (the caller cleans it before its next run).
std::optional<CrossSequence> find_cross_sequence(EngineUnderTest& engine, const Scenario& sc);

// {"seq", "needs_seq", "operation"}: the report's "cross_sequence".
nlohmann::json to_json(const CrossSequence& c);

}  // namespace miniinfer::props
