// What the lab-22 programs (property_test here, dump in ../22-yesterday-worked) share: their
// flags, where the shipped model and the experiment folders are, the manifest's versions block,
// byte and ULP comparison of float rows, and JSON artifacts written atomically.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace miniinfer::lab {

using Json = nlohmann::ordered_json;  // keys keep insertion order, so artifacts diff cleanly

// The source tree (MINIINFER_SOURCE_DIR) and paths inside it.
std::string source_dir();
std::string default_model_path();                     // experiments/17-minigpt/minigpt.safetensors
std::string experiment_dir(const std::string& name);  // experiments/NAME
// `path` relative to the source tree when it lies inside it (what manifests record, so a
// regeneration in another folder records the same string), else `path` unchanged.
std::string display_path(const std::string& path);

// Lab 22's results.json (its 50 prompts), checked to be made with the model whose sha256 is
// `model_sha` (read from `model_path`): Error naming both when it was not (regenerate first).
// The outside-engine labs (23, 25) run on its prompts.
Json lab22_results(const std::string& model_path, const std::string& model_sha);

// Compiler, Eigen, RapidCheck, fmt, nlohmann/json and Catch2, as the manifest's "versions".
Json versions();
// Today in UTC, YYYY-MM-DD.
std::string today_utc();
// Creates `dir` and its parents if missing; Error naming it on failure.
void ensure_dir(const std::string& dir);
// JSON indented by 2 with arrays of scalars on one line, and a final newline.
std::string to_pretty_json(const Json& json);
// to_pretty_json through write_file_atomic.
void write_json(const std::string& path, const Json& json);

// --name value, --name=value, or a bare --switch; every flag must be declared. An unknown or
// repeated flag, a missing value, or a positional argument throws Error naming it.
class Flags {
 public:
  Flags(int argc, char** argv, std::set<std::string> valued, std::set<std::string> switches);
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback) const;

 private:
  std::map<std::string, std::string> values_;
};

// Byte comparison of float rows. ULP distance is counted on the ordered integer line of
// floats (so -0 and +0 are 0 apart); a NaN on either side counts as the largest distance.
uint64_t ulp_distance(float a, float b);
struct ByteDiff {
  int64_t differing = 0;        // elements whose bytes differ
  int64_t differing_bytes = 0;  // bytes that differ (a size mismatch counts 4 per extra element)
  uint64_t max_ulp = 0;
  bool identical() const { return differing == 0; }
};
ByteDiff compare_floats(std::span<const float> a, std::span<const float> b);
// Index of the first element whose bytes differ, or nullopt if byte-identical (a size
// mismatch differs at the shorter length).
std::optional<size_t> first_byte_difference(std::span<const float> a, std::span<const float> b);

}  // namespace miniinfer::lab
