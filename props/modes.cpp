// The Catch2 runner lives here (CATCH_CONFIG_RUNNER: Catch2's implementation, without its main).
#define CATCH_CONFIG_RUNNER
#include "props/modes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <rapidcheck.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "props/cases.h"
#include "props/context.h"
#include "props/expected.h"
#include "props/failure_db.h"
#include "props/groups.h"
#include "props/junit.h"
#include "props/results.h"
#include "props/shard.h"

namespace miniinfer::props {
namespace {

// Refuses, before any property runs, an output folder that cannot be made or written: a
// failure found after minutes of checking must not be lost for want of a place to put it.
// Permission bits do not tell (root passes access() on /proc), so this tries: it makes the
// folder and writes and removes a probe file there. The folder stays: the run writes there,
// and a shard started beside this one may be probing it too.
void check_writable_dir(const std::string& label, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path where = dir.empty() ? fs::path(".") : fs::path(dir);
  std::error_code ec;
  if (!fs::is_directory(where, ec) && !fs::create_directories(where, ec) && !fs::is_directory(where))
    fail("{}: cannot create {}: {}", label, where.string(), ec ? ec.message() : "not a directory");
  const fs::path probe = where / fmt::format(".props-probe-{}", getpid());
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  bool wrote = fd >= 0 && write(fd, "x", 1) == 1 && fsync(fd) == 0;
  const int why = errno;
  if (fd >= 0) {
    close(fd);
    wrote = unlink(probe.c_str()) == 0 && wrote;
  }
  if (!wrote) fail("{}: cannot write in {}: {}", label, where.string(), std::strerror(why));
}

// A file written after the run (--summary, --junit): its folder must exist and take a file, and
// the path must not be a folder, or the run's outcome would be found unwritable only at its end.
void check_output_file(const std::string& flag, const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::exists(parent, ec))
    fail("{} {}: the folder {} does not exist", flag, path, parent.string());
  if (std::filesystem::is_directory(path, ec)) fail("{} {}: is a folder; name the file to write", flag, path);
  check_writable_dir(flag + " " + path, parent.string());
}

// RapidCheck reads RC_PARAMS at its first use, mid-run, and exits 1 (a failing property's
// status) on a bad one: read it here first, so a bad value is a refusal before any case.
void check_rc_params(const std::string& params) {
  rc::detail::Configuration config;
  try {
    config = rc::detail::configFromString(params);
  } catch (const rc::detail::ConfigurationException& e) {
    fail("RapidCheck's parameters (RC_PARAMS and the --rc-* flags) '{}': {}", params, e.what());
  }
  if (config.testParams.maxSuccess == 0)
    fail("--rc-max-success / RC_PARAMS max_success: 0 cases is no check (give 1 or more)");
}

// A replay runs one saved case: a flag it would not use is refused instead of ignored.
void check_replay_flags(const CommandLine& cl) {
  static const std::set<std::string> used = {"--replay", "--model",  "--engine", "--level",
                                             "--backend", "--inject", "--gguf",   "--report-dir",
                                             "--kv-cache", "--block-size", "--pool-blocks", "--threads"};
  for (const std::string& flag : cl.config.given)
    if (!used.count(flag)) fail("{}: --replay re-runs one saved case, as it was saved; it takes no {}", flag, flag);
  if (cl.catch_args.size() > 1)
    fail("{}: --replay re-runs one saved case; Catch2's filters and flags do not apply", cl.catch_args[1]);
}

// A reproduce run must reproduce: one whose property never ran (filtered out, or no such id)
// would otherwise end "All tests passed".
int check_reproduced(int status) {
  for (const auto& [id, reproduce] : rc::detail::configuration().reproduce) {
    bool ran = false;
    for (const auto& o : outcomes()) ran = ran || (o.id == id && o.status != "skipped");
    if (!ran) {
      std::fprintf(stderr, "props: the reproduce string names property %s, which this run did not run "
                   "(a test filter excludes it, or no property has that id)\n", id.c_str());
      status = status ? status : kExitRefused;
    }
  }
  return status;
}

// What the run was, as --summary and --junit record it.
nlohmann::json run_settings(const RunConfig& config, int status) {
  return {{"seed", rc::detail::configuration().testParams.seed},
          {"model", context().model_label},
          {"model_sha256", context().model_sha256},
          {"engine", context().subject->name()},
          {"engine_settings", context().subject->settings()},
          {"level", config.level},
          {"backend", config.backend},
          {"fault", config.inject.empty() ? "none" : config.inject},
          {"machine", run_machine_json()},
          {"exit_status", status}};
}

// --junit FILE: the run's settings as the testsuite's properties (in this order, a string
// each), then the outcomes.
int write_junit(const CommandLine& cl, int status, double seconds) {
  const nlohmann::json run = run_settings(cl.config, status);
  std::vector<std::pair<std::string, std::string>> settings;
  for (const char* name : {"seed", "engine", "engine_settings", "level", "backend", "fault", "model", "model_sha256",
                           "machine", "exit_status"})
    settings.emplace_back(name, run[name].is_string() ? run[name].get<std::string>() : run[name].dump());
  try {
    write_file_atomic(cl.junit, junit_xml(outcomes(), settings, cl.config.program, seconds));
  } catch (const Error& e) {
    std::fprintf(stderr, "props: --junit %s: %s\n", cl.junit.c_str(), e.what());
    return kExitOutputLost;
  }
  return status;
}

// The closing lines and, with --summary, the outcome per property as JSON.
int summarize(const CommandLine& cl, int status, double seconds) {
  int failed = 0, passed = 0, skipped = 0, xfailed = 0, xpassed = 0;
  for (const auto& o : outcomes()) {
    failed += o.status == "failed";
    passed += o.status == "passed";
    skipped += o.status == "skipped";
    xfailed += o.status == "expected-failure";
    xpassed += o.status == "unexpected-pass";
  }
  if (const std::string groups = groups_text(); !groups.empty()) std::printf("\n%s", groups.c_str());
  std::printf("props: took %.1f s in all\nprops: %d passed, %d failed%s%s%s\n", seconds, passed, failed,
              skipped ? fmt::format(", {} skipped", skipped).c_str() : "",
              xfailed ? fmt::format(", {} expected failure{}", xfailed, xfailed == 1 ? "" : "s").c_str() : "",
              xpassed ? fmt::format(", {} unexpected pass{}", xpassed, xpassed == 1 ? "" : "es").c_str() : "");
  if (!cl.junit.empty()) status = write_junit(cl, status, seconds);
  if (cl.summary.empty()) return status;
  nlohmann::json j = run_settings(cl.config, status);
  j["seconds"] = seconds;
  j["properties"] = nlohmann::json::array();
  j["groups"] = groups_json();
  for (const auto& o : outcomes()) {
    nlohmann::json p = {{"id", o.id},           {"property", o.sentence},
                        {"status", o.status},   {"cases", o.cases},
                        {"seconds", o.seconds}, {"counterexample", o.counterexample},
                        {"finer_levels", o.levels}};
    // An expected failure's (or unexpected pass's) entry: why, and the experiment.
    if (const ExpectedFailure* e = o.expected) p["expected"] = {{"reason", e->reason}, {"link", e->link}, {"strict", e->strict}};
    j["properties"].push_back(std::move(p));
  }
  try {
    write_file_atomic(cl.summary, j.dump(2) + "\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "props: --summary %s: %s\n", cl.summary.c_str(), e.what());
    return kExitOutputLost;
  }
  return status;
}

// A results line that could not be written stops the run here, wherever it was: Catch2 would
// count the property as errored and go on, and the run would end "passed" with results lost.
CATCH_TRANSLATE_EXCEPTION(const OutputError& e) {
  std::cout.flush();
  std::fflush(stdout);
  std::fprintf(stderr, "props: %s\n", e.what());
  std::fflush(stderr);
  std::_Exit(kExitOutputLost);
}

}  // namespace

int list_faults() {
  for (Fault f : all_faults())
    if (f != Fault::None) std::printf("%-22s %s\n", to_string(f), describe(f));
  return kExitOk;
}

void prepare_run(const CommandLine& cl) {
  if (!cl.replay.empty()) check_replay_flags(cl);
  check_rc_params(cl.rc_params);
  check_writable_dir("--report-dir " + cl.config.report_dir, cl.config.report_dir);
  if (!cl.summary.empty()) check_output_file("--summary", cl.summary);
  if (!cl.junit.empty()) check_output_file("--junit", cl.junit);
  // RapidCheck reads RC_PARAMS once, at first use: set it before anything touches it.
  setenv("RC_PARAMS", cl.rc_params.c_str(), 1);
  load_context(cl.config);
  // Expected failures (props/expected.h) and the failure database (props/failure_db.h), both
  // refused here when unreadable, before any property runs.
  if (cl.no_expected && !cl.expected.empty())
    fail("--expected {} and --no-expected: give one of them", cl.expected);
  if (cl.replay.empty())
    load_expected(cl.no_expected ? "" : cl.expected.empty() ? default_expected_file() : cl.expected);
  if (!cl.db.empty()) {
    check_writable_dir("--db " + cl.db, cl.db);
    open_failure_db(cl.db, cl.shard.empty() ? ShardSpec{} : parse_shard(cl.shard));
  }
}

int check_properties(const CommandLine& cl) {
  Catch::Session session;
  std::vector<const char*> cargv;
  for (const auto& a : cl.catch_args) cargv.push_back(a.c_str());
  // Catch2 would print a bad flag over several lines and exit 255: parse once here first, so a
  // bad flag is one line and exit status 2 like every other refused input.
  if (const auto parsed = session.cli().parse(Catch::clara::Args(static_cast<int>(cargv.size()), cargv.data()));
      !parsed) {
    std::string why = parsed.errorMessage();
    std::replace(why.begin(), why.end(), '\n', ' ');
    if (why.starts_with("Unrecognised token: ")) why = "unknown flag " + why.substr(20);
    std::fprintf(stderr, "props: %s (see props --help and props --help-catch)\n", why.c_str());
    return kExitRefused;
  }
  // The probe parse filled the session's settings: cleared, so the real parse does not append
  // the filters a second time (Catch2 then read "[p6],[p1] [p6],[p1]" and said "No test cases
  // matched '[p1][p6]'").
  session.configData() = Catch::ConfigData();
  if (session.applyCommandLine(static_cast<int>(cargv.size()), cargv.data()) != 0) return kExitRefused;
  // Catch2's other reporters write their XML to stdout among props' own lines, and without the
  // counterexample: --junit FILE is the report for CI.
  if (const std::string& reporter = session.configData().reporterName; reporter != "console") {
    std::fprintf(stderr, "props: Catch2's reporter '%s' is refused: its output would mix with props' lines; use "
                 "--junit FILE for a JUnit report\n", reporter.c_str());
    return kExitRefused;
  }
  const Catch::Config& config = session.config();
  const size_t matched =
      Catch::filterTests(Catch::getAllTestCasesSorted(config), config.testSpec(), config).size();
  const bool listing = session.configData().showHelp || session.configData().libIdentify || config.listTests() ||
                       config.listTestNamesOnly() || config.listTags() || config.listReporters();
  // A reproduce run that runs nothing has its own message, naming the property (check_reproduced).
  if (matched == 0 && !listing && cl.rc_params.find("reproduce=") == std::string::npos) {
    std::string filter;
    for (const auto& f : config.getTestsOrTags()) filter += (filter.empty() ? "" : " ") + f;
    std::fprintf(stderr, "props: no property matches the test filter %s (props --list-tests lists them)\n",
                 filter.c_str());
    return kExitRefused;
  }
  set_property_count(static_cast<int>(matched));
  const auto start = std::chrono::steady_clock::now();
  // Catch2 returns the number of failed test cases; props' status is kExitFailed for any.
  int status = check_reproduced(session.run() ? kExitFailed : kExitOk);
  // An expected failure that passed fails a run nothing else failed (props/expected.h).
  if (status == kExitOk && std::any_of(outcomes().begin(), outcomes().end(),
                                       [](const PropertyOutcome& o) { return o.status == "unexpected-pass"; }))
    status = kExitUnexpectedPass;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summarize(cl, status, seconds);
}

}  // namespace miniinfer::props
