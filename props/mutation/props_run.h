// Running the props binary as a subprocess and reading what it printed: the header line (model
// and fault under test), one line per property ("ok"/"FAIL", id, time), and the report JSON a
// failing property leaves in its report directory.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace miniinfer::mutation {

struct ProcessResult {
  int exit_code = -1;  // -1 if it did not exit normally
  int signal = 0;      // the signal that ended it, if any
  double wall_s = 0.0;
  double cpu_s = 0.0;  // user + system of the child: props is single-threaded, so on an idle
                       // core this is its wall time, and on a shared machine it stays honest
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] with argv, stdout and stderr into `log_path` (kept for a human to read).
// Throws Error if the program cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path);

struct PropertyLine {
  std::string id;  // "p3"
  bool ok = false;
  double seconds = 0.0;  // props' own timing of the property: cases, shrinking and the report
};

// One props run as props describes it: its --summary JSON, and the model's layer count from
// the header line (the one thing the summary does not hold).
struct PropsOutput {
  std::string model;         // the model label
  std::string model_sha256;  // empty for the built-in random model
  int n_layer = -1;
  std::string fault;  // the fault props says it injected
  std::vector<PropertyLine> properties;
  int cases_to_failure = -1;  // "Falsifiable after N tests" in the first failure's counterexample
  std::optional<PropertyLine> first_failure() const;
  double seconds_before(const std::string& id) const;  // sum of the properties run before `id`
};

// Reads `summary_path` (props --summary) and the header line of `text` (props' output). A
// missing or malformed summary or header is an Error naming it.
PropsOutput read_props_run(const std::string& text, const std::string& summary_path);

// The report JSON props wrote for `property` into `dir`; Error if missing or not JSON.
nlohmann::json read_report(const std::string& dir, const std::string& property);

}  // namespace miniinfer::mutation
