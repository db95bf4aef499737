#include "props/shard.h"

#include <fmt/format.h>
#include <rapidcheck.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/rng.h"
#include "props/expected.h"
#include "props/level.h"
#include "props/results.h"
#include "props/runner.h"

namespace miniinfer::props {
namespace {

using Clock = std::chrono::steady_clock;

// At most one progress line this often: a night's log stays readable.
constexpr double kProgressSeconds = 5.0;

std::string duration_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

// The run's progress on stderr: the property under way and its cases, the rate, the failures
// so far and an estimate of the time left. The estimate assumes the properties still to come
// take as long as the finished ones did on average: properties differ, so it is rough.
class Progress {
 public:
  void set_properties(int n) { properties_ = n; }
  void start_property(const std::string& id, int shard_cases, int already) {
    id_ = id;
    shard_cases_ = shard_cases;
    done_ = already;
    property_start_ = Clock::now();
    property_new_ = 0;
  }
  void batch_done(int cases, bool failed) {
    done_ += cases;
    property_new_ += cases;
    run_cases_ += cases;
    failures_ += failed ? 1 : 0;
    const auto now = Clock::now();
    if (seconds(last_, now) < kProgressSeconds) return;
    last_ = now;
    std::fprintf(stderr, "%s\n", line(now).c_str());
    std::fflush(stderr);
  }
  void end_property() {
    ++finished_;
    finished_seconds_ += seconds(property_start_, Clock::now());
  }

 private:
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  std::string line(Clock::time_point now) const {
    const double in_property = seconds(property_start_, now), in_run = seconds(run_start_, now);
    const double rate = in_property > 0 ? property_new_ / in_property : 0.0;
    const int left = shard_cases_ - done_;
    const double property_left = rate > 0 ? left / rate : 0.0;
    std::string text = fmt::format("progress  {} ({}/{}): {}/{} cases, {:.1f} cases/s, {} left in it", id_,
                                   finished_ + 1, properties_, done_, shard_cases_, rate,
                                   duration_text(property_left));
    text += fmt::format("; run: {} cases in {}, {} failure{}", run_cases_, duration_text(in_run), failures_,
                        failures_ == 1 ? "" : "s");
    const int to_come = properties_ - finished_ - 1;
    if (to_come >= 0) {
      const double current_total = in_property + property_left;
      const double per_property = finished_ > 0 ? finished_seconds_ / finished_ : current_total;
      text += fmt::format(", ETA ~{}", duration_text(property_left + to_come * per_property));
    }
    return text;
  }

  std::string id_;
  int properties_ = 0, finished_ = 0;
  int shard_cases_ = 0, done_ = 0, property_new_ = 0;
  long run_cases_ = 0;
  int failures_ = 0;
  double finished_seconds_ = 0.0;
  Clock::time_point run_start_ = Clock::now(), last_ = run_start_, property_start_ = run_start_;
};

struct SlicedRun {
  ShardSpec spec;
  std::unique_ptr<ResultsFile> results;
  Progress progress;
};
std::optional<SlicedRun>& sliced() {
  static std::optional<SlicedRun> run;
  return run;
}

constexpr int kMaxShards = 999999;

// A whole number (leading zeros allowed); -1 if `text` is none, kMaxShards + 1 if it is larger.
int parse_int(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  const size_t first = text.find_first_not_of('0');
  if (first == std::string::npos) return 0;
  return text.size() - first > 6 ? kMaxShards + 1 : std::stoi(text.substr(first));
}

// The results file's header: what must match for a restart to resume from the file.
nlohmann::json results_header(ShardSpec spec) {
  const auto& params = rc::detail::configuration().testParams;
  return {{"props_results", 1},
          {"seed", params.seed},
          {"max_success", params.maxSuccess},
          {"shard", fmt::format("{}/{}", spec.k, spec.n)},
          {"batch_cases", kBatchCases},
          {"shaping_flags", run_config().shaping_flags}};
}

uint64_t batch_seed(uint64_t property_seed, int index) {
  return Rng::stream(property_seed, static_cast<uint64_t>(index)).next_u64();
}

// Every batch line's case seed is the one this run derives for its property and index: a
// line of another seed would be counted, and its batch run again on top of it. (The results
// file has checked every other field already; line i of existing() is the file's line i + 2.)
void check_case_seeds(const ResultsFile& file, uint64_t run_seed) {
  std::map<std::string, uint64_t> property_seeds;
  const auto& lines = file.existing();
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json& j = lines[i];
    if (j.contains("plan")) {
      const std::string& id = j["plan"].get_ref<const std::string&>();
      property_seeds[id] = property_seed(run_seed, id);
      continue;
    }
    const int index = j["batch"].get<int>();
    const uint64_t want = batch_seed(property_seeds.at(j["property"].get<std::string>()), index);
    if (j["case_seed"].get<uint64_t>() != want)
      fail("--results {}: line {}: 'case_seed' is {}, but this run's batch {} of {} has seed {}", file.path(),
           i + 2, j["case_seed"].get<uint64_t>(), index, j["property"].get<std::string>(), want);
  }
}

// A resumed property's plan must be the one this run makes (a changed case count would make
// other batches); it is checked here, where the run's count is known.
void check_plan(const ResultsFile& file, const nlohmann::json& plan, int total, int batches,
                BatchRange range) {
  if (plan["cases"] != total || plan["batches"] != batches || plan["first"] != range.first ||
      plan["end"] != range.end)
    fail(
        "--results {}: the plan of {} ({}) is not this run's (cases {}, batches {}, first {}, end {}): pass "
        "another file",
        file.path(), plan["plan"].get<std::string>(), plan.dump(), total, batches, range.first, range.end);
}

nlohmann::json batch_line(const std::string& id, const Batch& b, const CheckResult& r) {
  nlohmann::json j = {{"property", id},         {"batch", b.index},     {"case_seed", b.seed},
                      {"cases", b.cases},       {"seconds", r.seconds}, {"status", r.passed ? "passed" : "failed"}};
  if (!r.passed) {
    j["counterexample"] = r.case_file;  // the saved case's path ("" if it could not be saved)
    j["reproduce"] = r.reproduce;
    j["message"] = r.counterexample;
    // A failure the expected-failures file expects: the merge counts it apart (nightly_report.py).
    if (const ExpectedFailure* e = expected_for(id)) j["expected"] = describe(*e);
  }
  return j;
}

}  // namespace

ShardSpec parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) fail("--shard '{}': expected K/N, the K-th of N slices (e.g. 1/4)", text);
  const int k = parse_int(text.substr(0, slash)), n = parse_int(text.substr(slash + 1));
  if (k < 0 || n < 0) fail("--shard '{}': expected K/N with whole numbers K and N (e.g. 1/4)", text);
  if (n > kMaxShards) fail("--shard '{}': N is more than {}, the most shards a run can have", text, kMaxShards);
  if (n < 1 || k < 1 || k > n) fail("--shard '{}': K must be between 1 and N, and N at least 1", text);
  return {k, n};
}

std::vector<Batch> batches_of(uint64_t property_seed, int total) {
  std::vector<Batch> out;
  for (int i = 0; i * kBatchCases < total; ++i)
    out.push_back({i, batch_seed(property_seed, i), std::min(kBatchCases, total - i * kBatchCases)});
  return out;
}

BatchRange shard_range(int count, ShardSpec spec) {
  const auto at = [&](int k) { return static_cast<int>(static_cast<long long>(count) * k / spec.n); };
  return {at(spec.k - 1), at(spec.k)};
}

void start_sliced_run(ShardSpec spec, const std::string& results) {
  SlicedRun run;
  run.spec = spec;
  if (!results.empty()) {
    // The header needs RapidCheck's configuration, whose first use prints "Using configuration:
    // seed=..." on stderr. A refused file must be one line on stderr: hold that line back
    // until the file is accepted.
    std::ostringstream held;
    std::streambuf* cerr_buf = std::cerr.rdbuf(held.rdbuf());
    nlohmann::json header;
    try {
      header = results_header(spec);
    } catch (...) {
      std::cerr.rdbuf(cerr_buf);
      throw;
    }
    std::cerr.rdbuf(cerr_buf);
    run.results = std::make_unique<ResultsFile>(results, header);
    check_case_seeds(*run.results, header["seed"].get<uint64_t>());
    std::cerr << held.str() << std::flush;
    if (run.results->dropped_bytes() > 0)
      std::fprintf(stderr, "props: --results %s: dropped a torn last line (%zu bytes); its batch runs again\n",
                   results.c_str(), run.results->dropped_bytes());
    const auto& lines = run.results->existing();
    if (!lines.empty())
      std::printf("props: resuming from %s: %zu batches done\n", results.c_str(),
                  static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [](const nlohmann::json& j) {
                    return j.contains("batch");
                  })));
  }
  sliced().emplace(std::move(run));
}

bool sliced_run() { return sliced().has_value(); }

void set_property_count(int n) {
  if (sliced_run()) sliced()->progress.set_properties(n);
}

bool check_sliced(const std::string& id, const std::string& sentence, uint64_t property_seed, int total,
                  const std::function<void()>& body) {
  SlicedRun& run = *sliced();
  const std::vector<Batch> all = batches_of(property_seed, total);
  const BatchRange range = shard_range(static_cast<int>(all.size()), run.spec);

  // What an earlier, interrupted run of this shard finished: those batches are not run again.
  std::set<std::pair<int, uint64_t>> done;
  int cases = 0;
  double seconds = 0.0;
  std::string failure;
  bool planned = false, failed_now = false;
  CheckResult failed;  // the failing batch run now: its reproduce command, case and site
  if (run.results) {
    for (const auto& j : run.results->existing()) {
      if (j.value("plan", "") == id) {
        check_plan(*run.results, j, total, static_cast<int>(all.size()), range);
        planned = true;
      }
      if (j.value("property", "") != id || !j.contains("batch")) continue;
      done.insert({j.at("batch").get<int>(), j.at("case_seed").get<uint64_t>()});
      seconds += j.value("seconds", 0.0);
      if (j.value("status", "") == "failed") failure = j.value("message", "failed");
      else cases += j.value("cases", 0);
    }
    // The plan: which batches this shard owns, so a merge can see gaps and overlaps.
    if (!planned)
      run.results->append({{"plan", id}, {"sentence", sentence}, {"cases", total},
                           {"batches", static_cast<int>(all.size())}, {"first", range.first}, {"end", range.end}});
  }
  int shard_cases = 0;
  for (int i = range.first; i < range.end; ++i) shard_cases += all[i].cases;
  run.progress.start_property(id, shard_cases, cases);

  std::map<std::string, int> tags;
  int tagged_cases = 0;
  // A property stops at its first failing batch, as an unsliced run stops at its first failing
  // case: with a fault present every batch would fail and shrink.
  for (int i = range.first; i < range.end && failure.empty(); ++i) {
    const Batch& b = all[i];
    if (done.count({b.index, b.seed})) continue;
    const CheckResult r = check_once(id, sentence, b.seed, b.cases, body);
    if (run.results) run.results->append(batch_line(id, b, r));
    seconds += r.seconds;
    if (r.passed) {
      cases += r.cases;
      tagged_cases += r.cases;
      for (const auto& [tag, n] : r.tags) tags[tag] += n;
    } else {
      failure = r.counterexample;
      failed_now = true;
      failed = r;
    }
    run.progress.batch_done(b.cases, !r.passed);
  }
  run.progress.end_property();
  const std::string label = fmt::format("{} [shard {}/{}]", sentence, run.spec.k, run.spec.n);
  if (failure.empty()) {
    print_passed(id, label, cases, seconds, tags);
    if (tagged_cases == 0)
      std::printf("      (every batch was resumed from the results file: no case ran now)\n");
    else if (tagged_cases < cases)
      std::printf("      (distribution of the %d cases run now; the others were resumed)\n", tagged_cases);
  } else if (!failed_now) {
    std::printf("FAIL  %-4s %s (failed in an earlier, interrupted run of this shard)\n%s\n", id.c_str(), label.c_str(),
                failure.c_str());
  }
  CheckResult whole = failed;  // the property's outcome: the failing batch's, with the shard's totals
  whole.passed = failure.empty(), whole.cases = cases, whole.seconds = seconds, whole.counterexample = failure;
  record_outcome(outcome_of(id, sentence, whole, failure.empty() ? observed_summary() : ""));
  std::fflush(stdout);
  return failure.empty();
}

}  // namespace miniinfer::props
