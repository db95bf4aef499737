// Runs properties under RapidCheck with stable ids (so reproduce strings are printed and
// replay), one readable line per property, and the failure path: counterexample, reproduce
// string, saved case and report. RapidCheck is not thread-safe; props runs one at a time.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

// What props was asked to do, read once in main.
struct RunConfig {
  std::string model_path;
  std::string model_sha256;
  std::string backend = "invariant";
  std::string inject;       // a fault name, or empty
  std::string report_dir = "props-report";
  std::string engine = "miniinfer";  // an engine's name (props/engine_registry.h)
  std::map<std::string, std::string> engine_flags;  // the engines' flags given: flag -> value
  nlohmann::json engine_settings;  // the engine's settings, built from its flags by load_context
  std::string level = "bits";        // bits | ulp:N | tokens (props/level.h)
  bool full = false;        // nightly scale for the long properties
  bool verbose = false;
  // How this run was started, for the printed reproduce command: the program as invoked and
  // every flag that shapes a case (--model, --backend, --inject, --full, ...), shell-quoted.
  std::string program = "props";
  std::vector<std::string> shaping_flags;
  // Every flag of ours the command line gave, by name ("--inject"): a replay tells an explicit
  // --inject none from no --inject.
  std::set<std::string> given;
};
// One line of the run's summary (props --summary FILE writes them as JSON).
struct ExpectedFailure;  // props/expected.h
// status: "passed", "failed", "skipped", and (props/expected-failures.json) "expected-failure"
// for a failure the file expects, "unexpected-pass" for an expected failure that passed.
struct PropertyOutcome {
  std::string id, sentence, status;
  int cases = 0;
  double seconds = 0.0;
  std::string counterexample;        // the shrunk case, when failed
  std::string levels;                // passed: what the cases showed at finer levels (level.h)
  // A failure's: the reproduce command, the saved case (for --replay; empty when none was
  // saved), and from its report the first parting site ("layer 0, head 2, k-read", "sampler",
  // "not located"), the cause, the verdict and the headline (props/groups.h).
  // For "skipped", headline says why.
  std::string reproduce, case_file, site, cause, verdict, headline;
  // For "expected-failure" and "unexpected-pass": the entry of props/expected-failures.json.
  const ExpectedFailure* expected = nullptr;
};
const std::vector<PropertyOutcome>& outcomes();
// Records a property's outcome, settled against the expected failures first (props/expected.h:
// a failure one expects becomes "expected-failure", its pass "unexpected-pass").
void record_outcome(PropertyOutcome outcome);

// The seed property `id` draws its cases from: a mix of the run's seed and the id, so that
// properties cover different prompts while one --rc-seed still fixes them all.
uint64_t property_seed(uint64_t run_seed, const std::string& id);
// The command that reproduces property `id`'s failure, verbatim for a shell.
std::string reproduce_command(uint64_t run_seed, const std::string& reproduce);
// Quotes `arg` for a POSIX shell when it needs it.
std::string shell_quote(const std::string& arg);

const RunConfig& run_config();
void set_run_config(RunConfig config);

class Property;  // props/property.h
// Checks the property: its cases (its default count, scaled by --rc-max-success / RC_PARAMS
// max_success) drawn from its own seed. Prints one line with the case count and time, then the
// tag distribution; on failure, the shrunk counterexample and the reproduce string. A property
// the engine cannot run is skipped, by name. Returns true unless it failed.
bool check_property(const Property& property);

// One RapidCheck check of `body` as property `id`: `cases` cases drawn from `seed`. A pass
// prints nothing (print_passed does); a failure prints the FAIL line, the shrunk
// counterexample, the reproduce command and the report; flaky engine crashes (run_engine_case)
// print a FLAKY line with each case and fail the check. check_property runs one per
// property; the sliced run (props/shard.h) one per batch.
struct CheckResult {
  bool passed = false;
  int cases = 0;
  double seconds = 0.0;
  std::map<std::string, int> tags;  // tag -> cases that carried it
  std::string counterexample;       // RapidCheck's message, when failed
  std::string reproduce;            // the reproduce command, when failed
  std::string case_file;            // the saved case (for --replay), when failed and saved
  std::string site, cause, verdict, headline;  // from the failure's report (props/groups.h)
};
// The outcome of a property checked as `r` (status "passed" or "failed"; levels for a pass).
PropertyOutcome outcome_of(const std::string& id, const std::string& sentence, const CheckResult& r,
                           const std::string& levels);

struct Failure;  // props/report.h
// Publishes `report` as property `id`'s failure (printed, saved to the report folder with
// `out.reproduce` as its reproduce command) and fills `out`'s saved case and site fields.
void publish_check_failure(const std::string& id, const Failure& report, CheckResult& out);

CheckResult check_once(const std::string& id, const std::string& sentence, uint64_t seed, int cases,
                       const std::function<void()>& body);
// The property's "ok" line and its tag distribution.
void print_passed(const std::string& id, const std::string& sentence, int cases, double seconds,
                  const std::map<std::string, int>& tags);

// One case run by `body` (a pure function of the case's inputs: what failed, or nothing). When
// the engine crashes during it (EngineCrashed, props/engines.h), the case runs once more on the
// restarted engine: a crash both times is the case's failure (`crashed`, the second crash's
// line, as a fresh engine numbers its requests), shrunk like any other; a crash only once is
// flaky: the second run's outcome stands, so RapidCheck never shrinks on the crash, and a note
// naming both outcomes (`describe` names the case) fails the property after its run.
struct CaseOutcome {
  std::optional<std::string> what;
  bool crashed = false;
};
CaseOutcome run_engine_case(const std::string& describe,
                            const std::function<std::optional<std::string>()>& body);

// Called by a property on each failing case with a closure that builds the full report. The
// last call before shrinking ends is the minimal counterexample: only that one is built,
// printed and saved (building a traced report at every shrink step would be wasted work).
void record_failure(std::function<Failure()> make_report);

}  // namespace miniinfer::props
