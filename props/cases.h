// A saved counterexample file, as --replay reads it: a case of one property (its own fields,
// props/properties/) with the engine, settings, backend, fault and level it was found under.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

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
};
// Throws Error naming the problem, and no other exception, whatever the JSON holds (the fuzz
// target case_file_fuzz checks that).
SavedCase saved_case_from_json(const nlohmann::json& j);

// Re-runs a saved counterexample; returns 1 if it still fails (with its report), 0 if not.
int replay_case(const std::string& path);

}  // namespace miniinfer::props
