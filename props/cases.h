// A saved counterexample file, as --replay reads it: a case of one property (its own fields,
// props/properties/) with the engine, settings, backend, fault and level it was found under.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/machine.h"
#include "props/engines.h"
#include "props/property.h"

namespace miniinfer::props {

struct SavedCase {
  const Property* property = nullptr;
  std::unique_ptr<LoadedCase> loaded;
  std::string backend = "invariant", fault = "none", model_sha256;
  std::string engine = "miniinfer";
  nlohmann::json engine_settings;    // the engine's, checked by its read_saved (null for ours)
  std::string level = "bits";
  std::optional<Machine> machine;  // where it was found; absent in files saved before issue 28
};
// Throws Error naming the problem, and no other exception, whatever the JSON holds (the fuzz
// target case_file_fuzz checks that).
SavedCase saved_case_from_json(const nlohmann::json& j);

// This run's machine (base/machine.h) with the engine's threads, as every case file and run
// summary records it under "machine". Ask it once the engine is open (llama.cpp's CPU variant
// is loaded then).
nlohmann::json run_machine_json();

// The one line a replay prints before it compares when the case was recorded on another machine
// or build (or on an unknown one); empty when the machines agree.
std::string machine_line(const std::string& path, const std::optional<Machine>& recorded, const Machine& here,
                         const std::string& engine);

// The *.case.json files directly in `dir` (not its subfolders), sorted by path: a --db folder
// or a report folder, met in one order by every run and shard.
std::vector<std::string> case_files_in(const std::string& dir);

// Re-runs a saved counterexample; returns 1 if it still fails (with its report), 0 if not.
// `path` may be a folder (a --db folder, a report folder): every *.case.json in it, one
// report each, then one line per case (still fails / passes now) and the total; 1 if any still
// fails. Throws Error naming the folder when it holds no case, or the first bad case file.
int replay_case(const std::string& path);

}  // namespace miniinfer::props
