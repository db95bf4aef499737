#include "props/runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <rapidcheck.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include "base/atomic_file.h"
#include "base/rng.h"
#include "props/context.h"
#include "props/expected.h"
#include "props/failure_db.h"
#include "props/groups.h"
#include "props/level.h"
#include "props/property.h"
#include "props/report.h"
#include "props/shard.h"

// Declared in RapidCheck's private headers; the Debian package ships the definitions.
namespace rc::detail {
std::string reproduceMapToString(const std::unordered_map<std::string, Reproduce>& reproduceMap);
}

namespace miniinfer::props {
namespace {

RunConfig& mutable_config() {
  static RunConfig config;
  return config;
}

struct FailureSlot {
  std::function<Failure()> make;
};
FailureSlot& last_failure() {
  static FailureSlot slot;
  return slot;
}

// Counts cases and shrinks; on a terminal, shows progress once a property runs for a second.
class ProgressListener : public rc::detail::TestListenerAdapter {
 public:
  ProgressListener(std::string id, int total) : id_(std::move(id)), total_(total) {}
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {
    ++cases_;
    show();
  }
  void onShrinkTried(const rc::detail::CaseDescription&, bool accepted) override {
    ++tries_;
    shrinks_ += accepted ? 1 : 0;
    show();
  }
  void clear() const {
    if (shown_) std::fprintf(stderr, "\r%-72s\r", "");
  }
  int shrinks() const { return shrinks_; }

 private:
  void show() {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - start_ < std::chrono::seconds(1) || now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    shown_ = true;
    if (tries_ == 0)
      std::fprintf(stderr, "\r  %s: %d/%d cases", id_.c_str(), cases_, total_);
    else
      std::fprintf(stderr, "\r  %s: shrinking, %d steps taken of %d tried", id_.c_str(), shrinks_, tries_);
    std::fflush(stderr);
  }
  std::string id_;
  int total_;
  int cases_ = 0, tries_ = 0, shrinks_ = 0;
  bool tty_ = isatty(2) != 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

// Tags are counted one by one: the families, languages, tense mixes and length buckets.
std::map<std::string, int> tag_counts(const rc::detail::Distribution& distribution) {
  std::map<std::string, int> counts;
  for (const auto& [tags, n] : distribution)
    for (auto tag : tags) {
      if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') tag = tag.substr(1, tag.size() - 2);
      counts[tag] += n;
    }
  return counts;
}

void print_distribution(const std::map<std::string, int>& counts, int total) {
  if (counts.empty() || total == 0) return;
  std::string line = "      ";
  for (const auto& [tag, n] : counts) {
    const std::string item = fmt::format("{} {}%  ", tag, (100 * n + total / 2) / total);
    if (line.size() + item.size() > 100) {
      std::printf("%s\n", line.c_str());
      line = "      ";
    }
    line += item;
  }
  std::printf("%s\n", line.c_str());
}

// Cases whose engine crashed on one run and not on the re-run, with both outcomes.
std::vector<std::string>& flaky_notes() {
  static std::vector<std::string> notes;
  return notes;
}

// A flaky crash fails the property, after its run: "FLAKY" and each case with both outcomes.
bool report_flaky(const std::string& id, const std::string& sentence, double seconds) {
  const auto& notes = flaky_notes();
  if (notes.empty()) return true;
  std::printf("FLAKY %-4s %-78s %6.2f s\n", id.c_str(), sentence.c_str(), seconds);
  for (size_t i = 0; i < notes.size() && i < 5; ++i) std::printf("      %s\n", notes[i].c_str());
  if (notes.size() > 5) std::printf("      ... and %zu more such cases\n", notes.size() - 5);
  std::fflush(stdout);
  return false;
}

// What the cases showed at levels finer than the run's, and what the engine left unchecked.
void print_levels(const std::string& id) {
  if (const std::string line = observed_summary(); !line.empty()) std::printf("      %s\n", line.c_str());
  const Property* p = find_property(id);
  if (const std::string u = p ? p->unchecked(*context().subject) : ""; !u.empty())
    std::printf("      not checked: %s\n", u.c_str());
}

PropertyOutcome skipped_outcome(const std::string& id, const std::string& sentence, const std::string& why) {
  PropertyOutcome o;
  o.id = id, o.sentence = sentence, o.status = "skipped", o.headline = why;
  return o;
}

// Whether the property, as just recorded, lets the run pass: an expected failure does.
bool settle(bool passed) { return passed || outcomes().back().status == "expected-failure"; }

// A property whose saved case (--db) still fails: its FAIL line and outcome.
bool record_saved_failure(const std::string& id, const std::string& sentence, const CheckResult& r) {
  std::printf("FAIL  %-4s %-78s %6.2f s\n", id.c_str(), sentence.c_str(), r.seconds);
  std::printf("      a saved case still fails (--db); no new cases were generated\n");
  record_outcome(outcome_of(id, sentence, r, ""));
  return false;
}

}  // namespace

PropertyOutcome outcome_of(const std::string& id, const std::string& sentence, const CheckResult& r,
                           const std::string& levels) {
  PropertyOutcome o;
  o.id = id, o.sentence = sentence, o.status = r.passed ? "passed" : "failed";
  o.cases = r.cases, o.seconds = r.seconds, o.counterexample = r.counterexample, o.levels = levels;
  o.reproduce = r.reproduce, o.case_file = r.case_file;
  o.site = r.site, o.cause = r.cause, o.verdict = r.verdict, o.headline = r.headline;
  return o;
}

std::vector<PropertyOutcome>& mutable_outcomes() {
  static std::vector<PropertyOutcome> all;
  return all;
}
const std::vector<PropertyOutcome>& outcomes() { return mutable_outcomes(); }
void record_outcome(PropertyOutcome outcome) {
  settle_expected(outcome);
  mutable_outcomes().push_back(std::move(outcome));
}

const RunConfig& run_config() { return mutable_config(); }
void set_run_config(RunConfig config) { mutable_config() = std::move(config); }

void record_failure(std::function<Failure()> make) { last_failure().make = std::move(make); }

CaseOutcome run_engine_case(const std::string& describe,
                            const std::function<std::optional<std::string>()>& body) {
  std::string first;
  try {
    return {body(), false};
  } catch (const EngineCrashed& e) {
    first = e.what();
  }
  try {
    std::optional<std::string> second = body();
    flaky_notes().push_back(fmt::format("flaky: {}: {}; the same case run again: {}", describe, first,
                                        second ? "it failed: " + *second : std::string("it passed")));
    return {second, false};
  } catch (const EngineCrashed& e) {
    return {std::string(e.what()), true};
  }
}

uint64_t property_seed(uint64_t run_seed, const std::string& id) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of the id
  for (unsigned char ch : id) h = (h ^ ch) * 0x100000001b3ULL;
  return mix64(run_seed ^ mix64(h));
}

std::string shell_quote(const std::string& arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                           "0123456789-_=./:,+@%") == std::string::npos;
  if (plain) return arg;
  std::string out = "'";
  for (char ch : arg) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

std::string reproduce_command(uint64_t run_seed, const std::string& reproduce) {
  const RunConfig& c = run_config();
  std::string cmd = shell_quote(c.program) + fmt::format(" --rc-seed={}", run_seed);
  for (const auto& flag : c.shaping_flags) cmd += " " + shell_quote(flag);
  return cmd + " " + shell_quote("--rc-reproduce=" + reproduce);
}

void print_passed(const std::string& id, const std::string& sentence, int cases, double seconds,
                  const std::map<std::string, int>& tags) {
  std::printf("ok    %-4s %-78s %5d cases %6.2f s\n", id.c_str(), sentence.c_str(), cases, seconds);
  print_distribution(tags, cases);
  print_levels(id);
  std::fflush(stdout);
}

void publish_check_failure(const std::string& id, const Failure& report, CheckResult& out) {
  publish_failure(id, report, out.reproduce);
  const std::string case_file = run_config().report_dir + "/" + id + ".case.json";
  if (std::filesystem::exists(case_file)) out.case_file = case_file;
  const FailureSite site = failure_site(report);
  out.site = site.site, out.cause = site.cause, out.verdict = site.verdict, out.headline = site.headline;
}

CheckResult check_once(const std::string& id, const std::string& sentence, uint64_t seed, int cases,
                       const std::function<void()>& body) {
  const auto& rc_config = rc::detail::configuration();
  rc::detail::TestParams params = rc_config.testParams;
  params.seed = seed;
  params.maxSuccess = cases;
  params.maxSize = std::min(params.maxSize, 100);  // above 100, RapidCheck's BitStream is UB
  last_failure().make = nullptr;
  flaky_notes().clear();

  ProgressListener listener(id, params.maxSuccess);
  const auto start = std::chrono::steady_clock::now();
  const auto result = rc::detail::checkTestable(body, rc::detail::TestMetadata{id, sentence}, params,
                                                listener, rc_config.reproduce);
  CheckResult out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  listener.clear();

  if (result.is<rc::detail::SuccessResult>()) {
    const auto& ok = result.get<rc::detail::SuccessResult>();
    out.passed = report_flaky(id, sentence, out.seconds);  // a flaky crash fails it
    out.cases = ok.numSuccess;
    out.tags = tag_counts(ok.distribution);
    for (const std::string& note : flaky_notes()) out.counterexample += note + "\n";
    return out;
  }
  std::printf("FAIL  %-4s %-78s %6.2f s\n", id.c_str(), sentence.c_str(), out.seconds);
  std::ostringstream message;
  rc::detail::printResultMessage(result, message);
  std::printf("%s\n", message.str().c_str());
  out.counterexample = message.str();
  if (result.is<rc::detail::FailureResult>()) {
    const auto* failure = &result.get<rc::detail::FailureResult>();
    out.cases = failure->numSuccess + 1;  // the cases run: those that passed, and the failing one
    const std::string reproduce = rc::detail::reproduceMapToString(
        std::unordered_map<std::string, rc::detail::Reproduce>{{id, failure->reproduce}});
    out.reproduce = reproduce_command(rc_config.testParams.seed, reproduce);
    std::printf("Shrunk in %d steps. Reproduce with:\n  %s\n", listener.shrinks(), out.reproduce.c_str());
    if (last_failure().make) {
      const Failure report = last_failure().make();
      publish_check_failure(id, report, out);
      db_store(id, report.case_json);
      record_group_member(id, report,
                          out.case_file.empty() ? out.reproduce
                                                : shell_quote(run_config().program) + " --replay " + shell_quote(out.case_file));
    }
  }
  report_flaky(id, sentence, out.seconds);
  std::fflush(stdout);
  return out;
}

bool check_property(const Property& property) {
  const auto& rc_config = rc::detail::configuration();
  const std::string id = property.id(), sentence = property.info().statement;
  const int cases = property.info().cases;
  const std::function<void()> body = [&property] { property.run_case(); };
  if (!rc_config.reproduce.empty() && !rc_config.reproduce.count(id)) {
    std::printf("SKIP  %-4s %s  (reproducing another property)\n", id.c_str(), sentence.c_str());
    mutable_outcomes().push_back(skipped_outcome(id, sentence, "reproducing another property"));
    return true;
  }
  if (const std::string why = property.skip_reason(*context().subject); !why.empty()) {
    std::printf("SKIP  %-4s %s  (%s)\n", id.c_str(), sentence.c_str(), why.c_str());
    mutable_outcomes().push_back(skipped_outcome(id, sentence, why));
    return true;
  }
  // --db: the property's saved cases first; one that still fails is the property's failure, and
  // no new case is generated (Hypothesis stops at a saved failure too).
  if (rc_config.reproduce.empty())
    if (const std::optional<CheckResult> saved = db_replay_first(id))
      return settle(record_saved_failure(id, sentence, *saved));
  begin_observing(id);
  // The default max_success (100) means "each property's own case count"; any other value
  // scales every property by max_success / 100 (the nightly run uses 2000: 20 times).
  const int total = std::max(1, static_cast<int>(static_cast<long long>(cases) * rc_config.testParams.maxSuccess / 100));
  const uint64_t seed = property_seed(rc_config.testParams.seed, id);
  // --shard / --results: the property runs as batches, each its own check (props/shard.h).
  if (sliced_run() && rc_config.reproduce.empty()) return settle(check_sliced(id, sentence, seed, total, body));

  const CheckResult r = check_once(id, sentence, seed, total, body);
  if (r.passed) print_passed(id, sentence, r.cases, r.seconds, r.tags);
  record_outcome(outcome_of(id, sentence, r, r.passed ? observed_summary() : ""));
  return settle(r.passed);
}

}  // namespace miniinfer::props
