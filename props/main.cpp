// props: the property checker. A Catch2 custom main: our flags (--rc-*, --model, --backend,
// --inject, --report-dir, --replay, --full) are taken out, RC_PARAMS is set from them before
// RapidCheck reads it, and everything else goes to Catch2 (test filters, reporters).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <string>
#include <vector>

#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <rapidcheck.h>

#include "base/atomic_file.h"

#include "base/error.h"
#include "props/cases.h"
#include "props/context.h"
#include "props/runner.h"
#include "props/shard.h"

namespace {

constexpr const char* kHelp = R"(props: checks that an engine's KV-cached path equals its own full recompute, bit for bit.

usage: props [flags] [Catch2 test filters and flags]

  --rc-seed=N           RapidCheck seed (printed in every run; default: RapidCheck's)
  --rc-max-success=N    cases per property, scaled: 100 = each property's default
  --rc-noshrink         report the first failing case without shrinking it
  --rc-reproduce=S      replay the failure a reproduce string names (other properties skip)
  --replay FILE         re-run a saved counterexample (report-dir/*.case.json) and report
  --model FILE          model weights (default: the shipped experiments/17-minigpt model)
  --engine NAME         the engine under test: miniinfer (ours, the default) or llamacpp
  --level LEVEL         what must be equal: bits (default: logits and K/V byte for byte),
                        ulp:N (every logit within N ULP, tokens equal) or tokens (token ids);
                        every report also says at which finer level a case parted
  --backend NAME        miniinfer: invariant (default) or eigen (library GEMMs: known to break bitwise)
  --inject FAULT        miniinfer: inject a cache fault (docs/faults.md); 'list' lists them
  --gguf FILE           llamacpp: the model as GGUF (minigpt export-gguf --out FILE); --model
                        must name the same model (it gives the tokenizer and the case files' sha256)
  --llama-kv f16|f32    llamacpp: the KV cache's type (default f16, llama.cpp's default)
  --llama-threads N     llamacpp: threads (default 1)
  --llama-flash on|off  llamacpp: flash attention (default off)
  --llama-ubatch N      llamacpp: rows of one physical batch (default 0: the whole batch)
  --report-dir DIR      where failure reports go (default: props-report)
  --full                random architectures at full size (d_model up to 512, batches of 4)
  --summary FILE        also write the run's outcome per property as JSON
  --shard K/N           run the K-th of N disjoint slices of every property's cases (batches
                        of 10 with their own seeds; N shards run exactly the 1/1 run's cases)
  --results FILE        append one fsync'd JSON line per finished batch; run again with the
                        same flags, it skips the batches FILE holds (docs/nightly.md)
  --help                this text; Catch2's own flags: props --help-catch

RC_PARAMS works as in RapidCheck; the flags above are appended to it and win.
A property that needs what the engine lacks (K/V rows, random architectures) is skipped, by
name, and counted as skipped. Docs: docs/llamacpp.md (the llama.cpp engine), docs/faults.md.
Exit status: 0 when every property holds (or a replayed case passes); 1 when a property fails
(or a replayed case still fails); 2 when a flag, the model, a replay file or an output folder
is refused, with one line on stderr naming it.
)";

bool take_value(const std::string& arg, const std::string& flag, std::vector<std::string>& rest,
                size_t& i, const std::vector<std::string>& args, std::string& out) {
  if (arg == flag) {
    if (i + 1 >= args.size()) miniinfer::fail("flag {} needs a value", flag);
    out = args[++i];
    return true;
  }
  if (arg.rfind(flag + "=", 0) == 0) {
    out = arg.substr(flag.size() + 1);
    return true;
  }
  (void)rest;
  return false;
}

// A decimal number for a RapidCheck parameter: RapidCheck would read "abc" as 0 unannounced.
void check_number(const std::string& flag, const std::string& value) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 19)
    miniinfer::fail("{}: '{}' is not a valid number", flag, value);
}

// Refuses, before any property runs, an output folder that could not be made or written: a
// failure found after minutes of checking must not be lost for want of a place to put it.
void check_writable_dir(const std::string& label, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = dir.empty() ? fs::path(".") : fs::path(dir);
  // The folder itself, or the nearest ancestor that exists (create_directories makes the rest).
  while (!fs::exists(p, ec)) {
    if (!p.has_parent_path() || p.parent_path() == p) {
      p = ".";
      break;
    }
    p = p.parent_path();
  }
  if (!fs::is_directory(p, ec)) miniinfer::fail("{}: {} is not a directory", label, p.string());
  if (access(p.c_str(), W_OK) != 0) miniinfer::fail("{}: {} is not writable", label, p.string());
}

}  // namespace

int main(int argc, char** argv) {
  using namespace miniinfer;
  std::vector<std::string> args(argv + 1, argv + argc), catch_args{argv[0]};
  std::string rc_params = std::getenv("RC_PARAMS") ? std::getenv("RC_PARAMS") : "";
  props::RunConfig config;
  config.program = argv[0];
  std::string replay, value, summary, shard, results;
  bool reproducing = false;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s", kHelp);
        return 0;
      } else if (a == "--help-catch") {
        catch_args.push_back("--help");
      } else if (take_value(a, "--rc-seed", catch_args, i, args, value)) {
        check_number("--rc-seed", value);
        rc_params += " seed=" + value;
      } else if (take_value(a, "--rc-max-success", catch_args, i, args, value)) {
        check_number("--rc-max-success", value);
        rc_params += " max_success=" + value;
        config.shaping_flags.push_back("--rc-max-success=" + value);
      } else if (a == "--rc-noshrink") {
        rc_params += " noshrink=1";
      } else if (take_value(a, "--rc-reproduce", catch_args, i, args, value)) {
        rc_params += " reproduce=" + value;
        reproducing = true;
      } else if (take_value(a, "--replay", catch_args, i, args, replay)) {
      } else if (take_value(a, "--model", catch_args, i, args, config.model_path)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--model", config.model_path});
      } else if (take_value(a, "--backend", catch_args, i, args, config.backend)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--backend", config.backend});
      } else if (take_value(a, "--inject", catch_args, i, args, config.inject)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--inject", config.inject});
      } else if (take_value(a, "--engine", catch_args, i, args, config.engine)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--engine", config.engine});
      } else if (take_value(a, "--level", catch_args, i, args, config.level)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--level", config.level});
      } else if (take_value(a, "--gguf", catch_args, i, args, config.gguf)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--gguf", config.gguf});
      } else if (take_value(a, "--llama-kv", catch_args, i, args, config.llama_kv)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--llama-kv", config.llama_kv});
      } else if (take_value(a, "--llama-flash", catch_args, i, args, config.llama_flash)) {
        config.shaping_flags.insert(config.shaping_flags.end(), {"--llama-flash", config.llama_flash});
      } else if (take_value(a, "--llama-threads", catch_args, i, args, value)) {
        check_number("--llama-threads", value);
        config.llama_threads = std::stoi(value.substr(0, 9));
        config.shaping_flags.push_back("--llama-threads=" + value);
      } else if (take_value(a, "--llama-ubatch", catch_args, i, args, value)) {
        check_number("--llama-ubatch", value);
        config.llama_ubatch = std::stoi(value.substr(0, 9));
        config.shaping_flags.push_back("--llama-ubatch=" + value);
      } else if (take_value(a, "--report-dir", catch_args, i, args, config.report_dir)) {
      } else if (take_value(a, "--summary", catch_args, i, args, summary)) {
      } else if (take_value(a, "--shard", catch_args, i, args, shard)) {
        props::parse_shard(shard);
      } else if (take_value(a, "--results", catch_args, i, args, results)) {
      } else if (a == "--full") {
        config.full = true;
        config.shaping_flags.push_back("--full");
      } else if (a.rfind("--rc-", 0) == 0 || a.rfind("--llama-", 0) == 0) {
        fail("unknown flag {} (see props --help)", a);
      } else {
        catch_args.push_back(a);
      }
    }
    if (rc_params.find("reproduce=") != std::string::npos && !reproducing)
      std::fprintf(stderr, "props: warning: RC_PARAMS holds reproduce=: only the property it names runs; the others are skipped, not passed\n");
    if (config.inject == "list") {
      for (Fault f : all_faults())
        if (f != Fault::None) std::printf("%-22s %s\n", to_string(f), describe(f));
      return 0;
    }
    check_writable_dir("--report-dir " + config.report_dir, config.report_dir);
    if (!summary.empty()) {
      const std::filesystem::path parent = std::filesystem::path(summary).parent_path();
      std::error_code ec;
      if (!parent.empty() && !std::filesystem::exists(parent, ec))
        fail("--summary {}: the folder {} does not exist", summary, parent.string());
      check_writable_dir("--summary " + summary, parent.string());
    }
    // RapidCheck reads RC_PARAMS once, at first use: set it before anything touches it.
    setenv("RC_PARAMS", rc_params.c_str(), 1);
    props::load_context(config);
    if (!replay.empty()) return props::replay_case(replay);
    if (!shard.empty() || !results.empty())
      props::start_sliced_run(shard.empty() ? props::ShardSpec{} : props::parse_shard(shard), results);
  } catch (const Error& e) {
    std::fprintf(stderr, "props: %s\n", e.what());
    return 2;
  }
  Catch::Session session;
  std::vector<const char*> cargv;
  for (const auto& a : catch_args) cargv.push_back(a.c_str());
  // Catch2 would print a bad flag over several lines and exit 255: parse once here first, so a
  // bad flag is one line and exit status 2 like every other refused input.
  if (const auto parsed = session.cli().parse(Catch::clara::Args(static_cast<int>(cargv.size()), cargv.data()));
      !parsed) {
    std::string why = parsed.errorMessage();
    std::replace(why.begin(), why.end(), '\n', ' ');
    if (why.starts_with("Unrecognised token: ")) why = "unknown flag " + why.substr(20);
    std::fprintf(stderr, "props: %s (see props --help and props --help-catch)\n", why.c_str());
    return 2;
  }
  if (const int rc = session.applyCommandLine(static_cast<int>(cargv.size()), cargv.data())) return rc;
  props::set_property_count(static_cast<int>(
      Catch::filterTests(Catch::getAllTestCasesSorted(session.config()), session.config().testSpec(), session.config())
          .size()));
  const auto start = std::chrono::steady_clock::now();
  // Catch2 returns the number of failed test cases; props' status is 1 for any (2 is a refusal).
  int status = session.run() ? 1 : 0;
  // A reproduce run must reproduce: one whose property never ran (filtered out, or no such id)
  // would otherwise end "All tests passed".
  for (const auto& [id, reproduce] : rc::detail::configuration().reproduce) {
    bool ran = false;
    for (const auto& o : props::outcomes()) ran = ran || (o.id == id && o.status != "skipped");
    if (!ran) {
      std::fprintf(stderr, "props: the reproduce string names property %s, which this run did not run "
                   "(a test filter excludes it, or no property has that id)\n", id.c_str());
      status = status ? status : 2;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int failed = 0, passed = 0, skipped = 0;
  for (const auto& o : props::outcomes()) {
    failed += o.status == "failed";
    passed += o.status == "passed";
    skipped += o.status == "skipped";
  }
  std::printf("props: took %.1f s in all\nprops: %d passed, %d failed%s\n", seconds, passed, failed,
              skipped ? fmt::format(", {} skipped", skipped).c_str() : "");
  if (!summary.empty()) {
    nlohmann::json j = {{"seed", rc::detail::configuration().testParams.seed},
                        {"model", props::context().model_label},
                        {"model_sha256", props::context().model_sha256},
                        {"engine", props::context().subject->name()},
                        {"engine_settings", props::context().subject->settings()},
                        {"level", config.level},
                        {"backend", config.backend},
                        {"fault", config.inject.empty() ? "none" : config.inject},
                        {"seconds", seconds},
                        {"exit_status", status},
                        {"properties", nlohmann::json::array()}};
    for (const auto& o : props::outcomes())
      j["properties"].push_back({{"id", o.id}, {"property", o.sentence}, {"status", o.status}, {"cases", o.cases},
                                 {"seconds", o.seconds}, {"counterexample", o.counterexample},
                                 {"finer_levels", o.levels}});
    try {
      write_file_atomic(summary, j.dump(2) + "\n");
    } catch (const Error& e) {
      std::fprintf(stderr, "props: %s\n", e.what());
      return status ? status : 2;
    }
  }
  return status;
}
