#include "props/cli.h"

#include <cstdlib>
#include <functional>

#include <fmt/format.h>

#include "base/error.h"
#include "base/exit_status.h"
#include "props/engine_registry.h"
#include "props/shard.h"

namespace miniinfer::props {
namespace {

constexpr const char* kHead = R"(props: checks that an engine's KV-cached path equals its own full recompute, bit for bit.

usage: props [flags] [Catch2 test filters and flags]

)";

constexpr const char* kTail = R"(
RC_PARAMS works as in RapidCheck; the flags above are appended to it and win.
A property that needs what the engine lacks (K/V rows, random architectures) is skipped, by
name, and counted as skipped. Docs: docs/llamacpp.md (the llama.cpp engine), docs/faults.md.
)";

// After the exit-status table: what it means in props' own modes.
constexpr const char* kExitNotes =
    R"(A refusal names the flag, file, filter or parameter on one line of stderr.
An engine that crashes during a case is restarted and the case runs again: a crash both times,
or only once (FLAKY), fails the property (1). props --conform exits 0, 5, 4 or 2 only.
)";

struct Flag {
  std::string name;   // "--rc-seed"
  std::string usage;  // its value as help shows it ("=N", " FILE"); empty: a switch
  std::string help;   // '\n' starts a continuation line; empty: not listed
  std::function<void(CommandLine&, const std::string& value)> set;
};

// A decimal number for a RapidCheck parameter: RapidCheck would read "abc" as 0 unannounced.
void check_number(const std::string& flag, const std::string& value) {
  if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 19)
    fail("{}: '{}' is not a valid number", flag, value);
}

void shaping(CommandLine& c, std::initializer_list<std::string> words) {
  c.config.shaping_flags.insert(c.config.shaping_flags.end(), words);
}

// An engine's flag: help says whose it is; the value goes where the declaration says.
Flag engine_flag(const EngineDecl& engine, const EngineFlag& f) {
  return {f.name, f.arg, fmt::format("{}: {}", engine.name, f.help), [&f](CommandLine& c, const std::string& v) {
            if (f.number) {
              check_number(f.name, v);
              shaping(c, {f.name + std::string("=") + v});
            } else {
              shaping(c, {f.name, v});
            }
            if (f.field)
              c.config.*f.field = v;
            else
              c.config.engine_flags[f.name] = v;
          }};
}

// "the engine under test: miniinfer (ours, the default) or llamacpp"
std::string engine_help() {
  std::string names;
  const auto& list = engines();
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) names += i + 1 == list.size() ? " or " : ", ";
    names += list[i]->name;
    if (*list[i]->note) names += fmt::format(" ({})", list[i]->note);
  }
  return "the engine under test: " + names;
}

// The flags help lists before the engines' flags, and after them.
std::vector<Flag> leading_flags() {
  return {{"--rc-seed", "=N", "RapidCheck seed (printed in every run; default: RapidCheck's)",
           [](CommandLine& c, const std::string& v) {
             check_number("--rc-seed", v);
             c.rc_params += " seed=" + v;
           }},
          {"--rc-max-success", "=N", "cases per property, scaled: 100 = each property's default",
           [](CommandLine& c, const std::string& v) {
             check_number("--rc-max-success", v);
             c.rc_params += " max_success=" + v;
             shaping(c, {"--rc-max-success=" + v});
           }},
          {"--rc-noshrink", "", "report the first failing case without shrinking it",
           [](CommandLine& c, const std::string&) { c.rc_params += " noshrink=1"; }},
          {"--rc-reproduce", "=S", "replay the failure a reproduce string names (other properties skip)",
           [](CommandLine& c, const std::string& v) {
             c.rc_params += " reproduce=" + v;
             c.reproducing = true;
           }},
          {"--replay", " FILE", "re-run a saved counterexample (report-dir/*.case.json) and report;\n"
           "--engine, --level, --backend, --inject override what it was saved with;\n"
           "a folder (--db DIR, a report folder): every *.case.json in it",
           [](CommandLine& c, const std::string& v) { c.replay = v; }},
          {"--conform", "", "with --engine-cmd CMD: check the engine's side of docs/protocol.md,\n"
           "op by op (ok, missing, wrong), and run no property",
           [](CommandLine& c, const std::string&) { c.conform = true; }},
          {"--model", " FILE", "model weights (default: the shipped experiments/17-minigpt model)",
           [](CommandLine& c, const std::string& v) {
             c.config.model_path = v;
             shaping(c, {"--model", v});
           }},
          {"--engine", " NAME", engine_help(),
           [](CommandLine& c, const std::string& v) {
             c.config.engine = v;
             shaping(c, {"--engine", v});
           }},
          {"--level", " LEVEL",
           "what must be equal: bits (default: logits and K/V byte for byte),\n"
           "ulp:N (every logit within N ULP, tokens equal) or tokens (token ids);\n"
           "every report also says at which finer level a case parted",
           [](CommandLine& c, const std::string& v) {
             c.config.level = v;
             shaping(c, {"--level", v});
           }}};
}

std::vector<Flag> trailing_flags() {
  return {{"--report-dir", " DIR", "where failure reports go (default: props-report)",
           [](CommandLine& c, const std::string& v) { c.config.report_dir = v; }},
          {"--full", "", "random architectures at full size (d_model up to 512, batches of 4)",
           [](CommandLine& c, const std::string&) {
             c.config.full = true;
             shaping(c, {"--full"});
           }},
          {"--summary", " FILE", "also write the run's outcome per property as JSON",
           [](CommandLine& c, const std::string& v) { c.summary = v; }},
          {"--junit", " FILE", "also write the run as JUnit XML for CI: a test case per property, a\n"
           "failure's counterexample, reproduce command and first parting site",
           [](CommandLine& c, const std::string& v) { c.junit = v; }},
          {"--shard", " K/N",
           "run the K-th of N disjoint slices of every property's cases (batches\n"
           "of 10 with their own seeds; N shards run exactly the 1/1 run's cases)",
           [](CommandLine& c, const std::string& v) {
             parse_shard(v);  // refused here, before anything runs
             c.shard = v;
           }},
          {"--results", " FILE",
           "append one fsync'd JSON line per finished batch; run again with the\n"
           "same flags, it skips the batches FILE holds (docs/nightly.md)",
           [](CommandLine& c, const std::string& v) { c.results = v; }},
          // The failure database and expected failures (docs/failure-db.md).
          {"--db", " DIR", "keep every failure's case in DIR; later runs replay DIR's cases\n"
           "first, and retire those that pass (docs/failure-db.md)",
           [](CommandLine& c, const std::string& v) { c.db = v; }},
          {"--expected", " FILE", "known failures of outside engines, reported as XFAIL (default:\n"
           "props/expected-failures.json; an entry that passes is XPASS, exit 6)",
           [](CommandLine& c, const std::string& v) { c.expected = v; }},
          {"--no-expected", "", "expect no failure: every failure fails the run",
           [](CommandLine& c, const std::string&) { c.no_expected = true; }},
          {"--help", "", "this text; Catch2's own flags: props --help-catch",
           [](CommandLine& c, const std::string&) { c.help = true; }},
          {"-h", "", "", [](CommandLine& c, const std::string&) { c.help = true; }},
          {"--help-catch", "", "", [](CommandLine& c, const std::string&) { c.catch_args.push_back("--help"); }}};
}

// Every flag, in help order: ours, each engine's, ours again.
const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = [] {
    std::vector<Flag> t = leading_flags();
    for (const EngineDecl* e : engines())
      for (const EngineFlag& f : e->flags) t.push_back(engine_flag(*e, f));
    for (Flag& f : trailing_flags()) t.push_back(std::move(f));
    return t;
  }();
  return table;
}

// Whether args[i] is `f`; its value (the next argument, or after '=') into `value`.
bool matches(const Flag& f, const std::vector<std::string>& args, size_t& i, std::string& value) {
  const std::string& a = args[i];
  if (f.usage.empty()) return a == f.name;
  if (a == f.name) {
    if (i + 1 >= args.size()) fail("flag {} needs a value", f.name);
    value = args[++i];
  } else if (a.rfind(f.name + "=", 0) == 0) {
    value = a.substr(f.name.size() + 1);
  } else {
    return false;
  }
  // An empty value would read as "not given" (--replay "" ran the properties): refused.
  if (value.empty()) fail("flag {}: the value is empty (expected {})", f.name, f.usage.substr(1));
  return true;
}

// Ours by prefix: refused when unknown instead of going to Catch2.
bool our_prefix(const std::string& a) {
  if (a.rfind("--rc-", 0) == 0) return true;
  for (const EngineDecl* e : engines())
    if (e->flag_prefix && a.rfind(e->flag_prefix, 0) == 0) return true;
  return false;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv) {
  CommandLine c;
  const std::vector<std::string> args(argv + 1, argv + argc);
  c.catch_args = {argv[0]};
  c.config.program = argv[0];
  c.rc_params = std::getenv("RC_PARAMS") ? std::getenv("RC_PARAMS") : "";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string value;
    const Flag* hit = nullptr;
    for (const Flag& f : flags())
      if (matches(f, args, i, value)) {
        hit = &f;
        break;
      }
    if (hit) {
      hit->set(c, value);
      c.config.given.insert(hit->name);
      if (c.help) return c;
    } else if (our_prefix(args[i])) {
      fail("unknown flag {} (see props --help)", args[i]);
    } else {
      c.catch_args.push_back(args[i]);
    }
  }
  return c;
}

std::string help_text() {
  std::string out = kHead;
  for (const Flag& f : flags()) {
    if (f.help.empty()) continue;
    size_t from = 0, nl;
    const std::string usage = f.name + f.usage;  // a long one gets a line of its own
    out += usage.size() < 22 ? fmt::format("  {:<22}", usage) : fmt::format("  {}\n{:24}", usage, "");
    while ((nl = f.help.find('\n', from)) != std::string::npos) {
      out += f.help.substr(from, nl - from) + "\n" + std::string(24, ' ');
      from = nl + 1;
    }
    out += f.help.substr(from) + "\n";
  }
  return out + kTail + "\nExit status:\n" + exit_status_text() + kExitNotes;
}

}  // namespace miniinfer::props
