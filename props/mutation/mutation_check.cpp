// mutation_check: the fault catalogue's proof. For every fault the engine can inject it runs the
// props binary with that fault and checks that props catches it (default settings, and seeds 1
// to N), that the shrunk counterexample is small, that the report names the fault's documented
// site, and that detection is fast. docs/faults.md explains the table below and the numbers.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/exit_status.h"
#include "engine/faults.h"
#include "props_run.h"

using namespace miniinfer;
using namespace miniinfer::mutation;
namespace fs = std::filesystem;

namespace {

constexpr int kLastLayer = -1;  // "layer L-1": the model's last layer, read from props' header
constexpr int kNoLayer = -2;    // a named cause outside the forward pass (the report's "cause")

// Where the reporter must say the cached path and full recompute first part: the layer, the
// component (in the reporter's dataflow order q, k, v, k-read, v-read, probs, attn, block; or
// "position" when the token landed in the wrong slot) and the verdict. Same table as
// docs/faults.md; a fault with no row here fails the check.
struct Site {
  Fault fault;
  int layer;
  std::vector<std::string> components;  // the first is the one the docs name
  std::string verdict;                  // "gross" or "ulp-drift"
  int max_prompt = 0;                   // prompt tokens a shrunk gross case may keep (0: the default)
  int max_commands = 0;                 // p11: commands a shrunk gross program may keep (0: the default)
  int max_new = 0;                      // new tokens a shrunk gross case may keep (0: the default)
};

const std::vector<Site>& documented_sites() {
  static const std::vector<Site> sites = {
      // The hole at the cursor is the first wrong value decode reads.
      {Fault::CursorOffByOne, 0, {"k-read"}, "gross"},
      // q, k, v are right; attention covers one slot too few (the current one).
      {Fault::SelfExcluded, 0, {"probs"}, "gross"},
      // Same shape of error: the q_len=1 mask keeps only slot 0.
      {Fault::DecodeMask, 0, {"probs"}, "gross"},
      // Layer 0 reads its own cache; layer 1 is the first to read another layer's rows.
      {Fault::LayerAlias, 1, {"k-read"}, "gross"},
      // K is written, V is not: the last layer's V read is the first wrong value.
      {Fault::LastLayerStale, kLastLayer, {"v-read"}, "gross"},
      // The double kernel rounds its probabilities once from double; the float kernel's
      // differ in the last bit first (attn when the probabilities happen to agree).
      {Fault::Fp64Decode, 0, {"probs", "attn"}, "ulp-drift"},
      // q is rotated before k in the dataflow order, both with the wrong angle.
      {Fault::RopeDecodePhase, 0, {"q"}, "gross"},
      // Sequence b reads sequence 0's rows from slot 0 on.
      {Fault::BatchStride, 0, {"k-read"}, "gross"},
      // The second request's tokens sit after the first request's slots.
      {Fault::StaleCache, 0, {"position"}, "gross"},
      // The resumed chunk's q and k are rotated from position 0.
      {Fault::ResumeOffset, 0, {"q"}, "gross"},
      // The first product of decode: Eigen's GEMV rounds differently from the kernel.
      {Fault::LibraryGemv, 0, {"q", "k", "v"}, "ulp-drift"},
      // Scores are scaled wrong, so the probabilities are the first wrong value.
      {Fault::SoftmaxScale, 0, {"probs"}, "gross"},
      // The history faults: p11's programs. A fork that skips the upper half of the layers
      // leaves rows at layer L/2 (2 of 4) that full recompute does not have.
      {Fault::ForkShallow, 2, {"cache"}, "gross"},
      // The cursor stays one past the truncation point: the first wrong thing is the cursor.
      {Fault::TruncateStale, 0, {"cursor", "position"}, "gross"},
      // Two sequences at different cursors (1 + 2 tokens) in one decode call: the second's q
      // is rotated at the first's position.
      {Fault::RaggedPosition, 0, {"q"}, "gross", 3},
      // The decode row reads the chunk's sequence's keys from slot 0 on.
      {Fault::ContinuousBatchMask, 0, {"k-read"}, "gross"},
      // The prompt's first row sees the second in layer 0: the reporter compares every row of
      // the prefill, so it names that row's probabilities, not the last row's layer-1 K read.
      {Fault::ChunkMask, 0, {"probs"}, "gross"},
      // The kernel mutants. The block kernel's row 3 of a prompt of 8 reads 3 slots instead of 4:
      // its probabilities are the first wrong value, at layer 0.
      {Fault::BlockSlotShort, 0, {"probs", "attn"}, "gross", 8},
      // Decode's last head sums its weighted values in another order: its attention output
      // drifts by a few ULP.
      {Fault::HeadsOrder, 0, {"attn"}, "ulp-drift"},
      // Decode's softmax sum in another order: the probabilities drift.
      {Fault::SoftmaxOrder, 0, {"probs"}, "ulp-drift"},
      // Decode's first LayerNorm sums in another order: layer 0's ln1 drifts.
      {Fault::LayerNormOrder, 0, {"ln1"}, "ulp-drift"},
      // A ragged batched call gathers a chunk's logits from the wrong row: every block agrees,
      // the final LayerNorm's row is another position's.
      {Fault::LogitsRow, kLastLayer, {"final-ln"}, "gross", 3},
      // Identical logits, a different coin: the sampler. A coin of the step before draws another
      // token only where the two coins fall on two sides of an edge: 4 draws at seed 1.
      {Fault::StaleCoin, kNoLayer, {"sampler"}, "gross", 0, 0, 4},
      // Above one thread the cached fc_out product adds one partial sum per thread: layer 0's MLP
      // output drifts by a few ULP. p1..p13 run on one thread (--threads), where it does not act;
      // p14 draws two counts, and shrinks to "I" on 1 and 2 threads.
      {Fault::SplitK, 0, {"mlp"}, "ulp-drift"},
      // The paged cache's faults (--inject picks the paged layout). p11's pool check
      // (PagedKvCache::check) or its model of prefix hits sees most before any row is read.
      // A key short of its last token: a prompt differing there hits the block and reads its K.
      {Fault::PrefixHashShort, 0, {"k-read"}, "gross", 0, 2},
      // A write into a block a fork shares: the pool's check sees the registered block's tokens
      // change (the rows differ too, when the check is off).
      {Fault::CowMissing, 0, {"pool", "cache", "k"}, "gross", 0, 5},
      // A fork that does not count its last shared block: the refcount is one short at once.
      {Fault::RefcountShort, 0, {"pool"}, "gross", 0, 2},
      // Slot 16 (the first slot of the second block of 16) is written through block 0's entry:
      // p6 needs 17 positions, the next token's K read shows it.
      {Fault::BlockTableBoundary, 0, {"k-read", "k"}, "gross", 0, 0, 17},
      // The registry keeps pointing at an evicted block: the pool's check.
      {Fault::EvictStale, 0, {"pool"}, "gross", 0, 4},
      // A released partial block keyed as full: a resubmit hits it and reads its stale slots.
      // p11's programs draw verify and rollback commands too since issue 31: the default run's
      // program shrinks to 4 commands (submit, reset, decode, resubmit), a local minimum.
      {Fault::PartialBlockFull, 0, {"k-read"}, "gross", 0, 4},
      // The sliding window's faults (--inject picks window 8 with 2 sinks, a ring of 14).
      // Position 16, the first after the ring's wrap, lands in slot 3, which position 17 then
      // overwrites: position 17's K read of position 16 is the first wrong value (p6: a prompt
      // of 1 and 18 draws, the 18th from position 17).
      {Fault::RingWrapOffByOne, 0, {"k-read"}, "gross", 0, 0, 18},
      // Full recompute reads position p - 6 too from position 8 on: its probabilities are the
      // first value that parts (9 positions at least).
      {Fault::WindowMaskWide, 0, {"probs"}, "gross", 0, 0, 9},
      // Speculative decoding's faults (p17 drives verify and rollback). The verify call's q is
      // rotated one position on, before anything else it computes.
      {Fault::VerifyPositionShift, 0, {"q", "k"}, "gross"},
      // The rejected drafts stay counted: the cursor differs from the history's length.
      {Fault::RollbackCursor, 0, {"cursor", "position"}, "gross"},
      // The quantized cache's faults (--inject picks int8 with a residual of 4); p6 sees both
      // first, in decode's read of a row the cached path stored otherwise than recompute reads
      // it. flush-chunking quantizes a one-token prompt's row at the end of its call: the first
      // decode step reads it quantized, recompute in float.
      {Fault::FlushChunking, 0, {"k-read"}, "gross"},
      // scale-group shows once a group of 4 is flushed: "I" and 4 decode steps fill it, the
      // fifth reads it with one scale for all heads.
      {Fault::ScaleGroup, 0, {"k-read"}, "gross", 0, 0, 5},
  };
  return sites;
}

const Site* site_of(Fault f) {
  for (const auto& s : documented_sites())
    if (s.fault == f) return &s;
  return nullptr;
}

std::string site_text(int layer, const std::string& component, int n_layer) {
  if (layer == kNoLayer) return component;
  const int l = layer == kLastLayer ? n_layer - 1 : layer;
  return fmt::format("L{} {}", l, component);
}

struct Options {
  std::string props;
  std::string work = "mutation-work";
  std::string model;
  int jobs = 2;
  int seeds = 10;
  double budget_s = 2.0;
  int max_gross_prompt = 2, max_gross_new = 2;
  int max_gross_commands = 2;  // p11: a gross history fault shrinks to two commands
  bool control = true;
  std::vector<Fault> faults;
};

struct SeedRun {
  int seed = 0;
  bool detected = false;
  std::string property;      // the property that failed
  bool fallback = false;     // the seed-1 property passed, so the whole suite ran
  double cpu_s = 0.0;        // the run's CPU time: start, model load, cases up to the first
                             // counterexample, its report
  double fail_line_s = 0.0;  // props' own wall-clock time of the failing property
  int cases = -1;
};

struct FaultResult {
  Fault fault = Fault::None;
  // The default run (--rc-seed=1, default case counts, shrinking on, -a).
  int exit_code = -1;
  std::string property;
  double shrink_line_s = 0.0;  // props' time for the failing property, shrinking included
  double before_s = 0.0;       // props' time for the properties that passed before it
  double cpu_s = 0.0, wall_s = 0.0;
  int n_layer = -1;
  std::string prompt_text;
  int prompts = 0, prompt_tokens = 0, new_tokens = 0;
  int layer = -2, head = -2;
  int commands = 0;  // p11: the shrunk program's length
  std::string component, verdict, headline;
  bool located = false;  // the report names a first parting site or a cause outside the forward pass
  bool at_site = false;  // ... and it is the documented one
  std::vector<SeedRun> seeds;
  std::set<std::string> models;  // every model label and sha256 props reported, to catch a
                                 // model file that lands or changes while the check runs
  std::vector<std::string> failures;
};

std::string log_path(const std::string& dir) { return dir + ".log"; }

std::vector<std::string> props_args(const Options& o, Fault f, int seed, const std::string& dir) {
  std::vector<std::string> a = {o.props, fmt::format("--rc-seed={}", seed), "-a", "--report-dir", dir};
  if (f != Fault::None) a.insert(a.end(), {"--inject", to_string(f)});
  if (!o.model.empty()) a.insert(a.end(), {"--model", o.model});
  return a;
}

std::string summary_path(const std::string& dir) { return dir + ".summary.json"; }

// One props run with its report directory `dir`, log and summary next to it; what props says
// about the run, read from its summary.
PropsOutput run_props(std::vector<std::string> args, const std::string& dir, ProcessResult& p) {
  // A report or summary left by an earlier run must not pass for this one's.
  fs::remove_all(dir);
  fs::remove(summary_path(dir));
  fs::create_directories(fs::path(dir).parent_path());
  args.insert(args.end(), {"--summary", summary_path(dir)});
  p = run_process(args, log_path(dir));
  return read_props_run(p.output, summary_path(dir));
}

// The site a report names: its first parting site, or, for a cause outside the forward pass
// (the report's "cause": sampler, cursor, bookkeeping, scheduling, poison, ...), that cause.
void read_site(const nlohmann::json& j, FaultResult& r) {
  const std::string cause = j.value("cause", "");
  if (j.contains("first_parting")) {
    const auto& fp = j.at("first_parting");
    r.layer = fp.at("layer").get<int>();
    r.head = fp.value("head", -2);
    r.component = fp.at("component").get<std::string>();
  }
  if ((r.component.empty() || r.component == "sampler") && !cause.empty() && cause != "forward") {
    r.layer = kNoLayer;
    r.component = cause;
  }
  r.verdict = j.value("verdict", "");
}

// Reads the shrunk case and the site from the default run's report.
void read_default_report(const nlohmann::json& j, FaultResult& r) {
  const auto& c = j.at("case");
  std::string text;
  if (c.contains("program")) {  // p11: a program of commands (props/history.h)
    for (const auto& step : c.at("program")) {
      text += fmt::format("{}{}", text.empty() ? "" : "; ", step.at("text").get<std::string>());
      for (const auto& t : step.at("tokens")) r.prompt_tokens += static_cast<int>(t.size());
      if (step.at("kind") == "decode") r.new_tokens += step.at("n").get<int>();
      ++r.commands;
    }
    r.prompts = r.commands;
    r.prompt_text = text;
    r.headline = j.value("headline", "");
    read_site(j, r);
    return;
  }
  for (const auto& p : c.at("prompts")) {
    text += fmt::format("{}\"{}\"", text.empty() ? "" : " | ", p.at("text").get<std::string>());
    r.prompt_tokens += static_cast<int>(p.at("ids").size());
    ++r.prompts;
  }
  // p4 resumes with a chunk after decoding k tokens: the chunk is user input, the k tokens
  // are drawn (the case format: docs in props/cases.h).
  const int chunk = static_cast<int>(c.value("chunk", nlohmann::json::array()).size());
  if (chunk > 0) text += fmt::format(" +chunk({})", chunk);
  r.prompt_tokens += chunk;
  r.new_tokens = c.at("params").at("max_new_tokens").get<int>() + (r.property == "p4" ? c.value("k", 0) : 0);
  r.prompt_text = text;
  r.headline = j.value("headline", "");
  read_site(j, r);
}

void default_run(const Options& o, FaultResult& r) {
  const std::string name = to_string(r.fault);
  const std::string dir = o.work + "/" + name + "/default";
  ProcessResult p;
  const PropsOutput out = run_props(props_args(o, r.fault, 1, dir), dir, p);
  r.exit_code = p.exit_code;
  r.cpu_s = p.cpu_s;
  r.wall_s = p.wall_s;
  r.models.insert(out.model);
  r.models.insert("sha256 " + out.model_sha256);
  r.n_layer = out.n_layer;
  if (out.fault != name) {
    r.failures.push_back(
        fmt::format("props says it injected '{}', not '{}' (log {})", out.fault, name, log_path(dir)));
    return;
  }
  const auto failed = out.first_failure();
  if (p.exit_code == 0 || !failed) {
    r.failures.push_back(p.exit_code == 0
                             ? fmt::format("not detected: props --rc-seed=1 exits 0 (log {})", log_path(dir))
                             : fmt::format("props exited {} (signal {}) without a failing property (log {})",
                                           p.exit_code, p.signal, log_path(dir)));
    return;
  }
  r.property = failed->id;
  r.shrink_line_s = failed->seconds;
  r.before_s = out.seconds_before(failed->id);
  read_default_report(read_report(dir, failed->id), r);
}

SeedRun seed_run(const Options& o, FaultResult& r, int seed) {
  const Fault f = r.fault;
  const std::string& property = r.property;
  const std::string dir = fmt::format("{}/{}/seed-{}", o.work, to_string(f), seed);
  SeedRun s;
  s.seed = seed;
  auto args = props_args(o, f, seed, dir);
  args.push_back("--rc-noshrink");  // detection only: how soon the first counterexample comes
  if (!property.empty()) args.push_back("[" + property + "]");
  ProcessResult p;
  PropsOutput out = run_props(args, dir, p);
  if (p.exit_code == 0 && !property.empty()) {
    // The property that caught it at seed 1 does not at this seed: does any other?
    s.fallback = true;
    args.pop_back();
    out = run_props(args, dir, p);
  }
  r.models.insert(out.model);
  r.models.insert("sha256 " + out.model_sha256);
  const auto failed = out.first_failure();
  s.detected = p.exit_code != 0 && failed.has_value();
  s.cpu_s = p.cpu_s;
  s.cases = out.cases_to_failure;
  if (failed) {
    s.property = failed->id;
    s.fail_line_s = failed->seconds;
  }
  return s;
}

void check(const Options& o, FaultResult& r) {
  const Site* site = site_of(r.fault);
  if (!site) {
    r.failures.push_back("no documented site: add it to documented_sites() and docs/faults.md");
  } else if (!r.property.empty()) {
    const int want_layer = site->layer == kLastLayer ? r.n_layer - 1 : site->layer;
    r.located = !r.component.empty();
    if (r.component.empty())
      r.failures.push_back(fmt::format("the report names no first parting site (documented: {})",
                                       site_text(site->layer, site->components.front(), r.n_layer)));
    else if (r.layer != want_layer || std::find(site->components.begin(), site->components.end(),
                                                r.component) == site->components.end())
      r.failures.push_back(fmt::format("reported site {} is not the documented {}",
                                       site_text(r.layer, r.component, r.n_layer),
                                       site_text(site->layer, site->components.front(), r.n_layer)));
    else
      r.at_site = true;
    if (!r.component.empty() && r.verdict != site->verdict)
      r.failures.push_back(fmt::format("verdict '{}', documented '{}'", r.verdict, site->verdict));
    const int max_prompt = site->max_prompt ? site->max_prompt : o.max_gross_prompt;
    const int max_commands = site->max_commands ? site->max_commands : o.max_gross_commands;
    const int max_new = site->max_new ? site->max_new : o.max_gross_new;
    if (site->verdict == "gross" && r.commands > 0 && r.commands > max_commands)
      r.failures.push_back(fmt::format("shrunk program has {} commands; a gross fault must come down to <= {}",
                                       r.commands, max_commands));
    else if (site->verdict == "gross" && r.commands == 0 && (r.prompt_tokens > max_prompt || r.new_tokens > max_new))
      r.failures.push_back(
          fmt::format("shrunk counterexample is {} prompt tokens and {} new tokens; a gross fault "
                      "must come down to <= {} and <= {}",
                      r.prompt_tokens, r.new_tokens, max_prompt, max_new));
  }
  for (const auto& s : r.seeds) {
    if (!s.detected) r.failures.push_back(fmt::format("not detected at --rc-seed={}", s.seed));
    if (s.seed == 1 && s.detected && s.cpu_s > o.budget_s)
      r.failures.push_back(
          fmt::format("detection at seed 1 took {:.2f} s of CPU (budget {:g} s)", s.cpu_s, o.budget_s));
  }
}

void run_fault(const Options& o, FaultResult& r) {
  try {
    default_run(o, r);
    if (!r.property.empty())
      for (int seed = 1; seed <= o.seeds; ++seed) r.seeds.push_back(seed_run(o, r, seed));
    check(o, r);
  } catch (const std::exception& e) {
    r.failures.push_back(e.what());
  }
}

double median(std::vector<int> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

nlohmann::json to_json(const FaultResult& r) {
  nlohmann::json seeds = nlohmann::json::array();
  for (const auto& s : r.seeds)
    seeds.push_back({{"seed", s.seed},
                     {"detected", s.detected},
                     {"property", s.property},
                     {"fallback", s.fallback},
                     {"cpu_s", s.cpu_s},
                     {"fail_line_s", s.fail_line_s},
                     {"cases", s.cases}});
  return {{"fault", to_string(r.fault)},
          {"property", r.property},
          {"prompt", r.prompt_text},
          {"prompts", r.prompts},
          {"prompt_tokens", r.prompt_tokens},
          {"new_tokens", r.new_tokens},
          {"commands", r.commands},
          {"layer", r.layer},
          {"head", r.head},
          {"component", r.component},
          {"verdict", r.verdict},
          {"headline", r.headline},
          {"located", r.located},
          {"at_documented_site", r.at_site},
          {"shrink_line_s", r.shrink_line_s},
          {"before_s", r.before_s},
          {"default_cpu_s", r.cpu_s},
          {"default_wall_s", r.wall_s},
          {"seeds", seeds},
          {"failures", r.failures}};
}

constexpr const char* kHelp =
    R"(mutation_check: proves that props catches every fault in the engine's catalogue.

usage: mutation_check --props PATH [--work DIR] [--jobs N] [--seeds N] [--fault NAME]...
                      [--budget S] [--model FILE] [--no-control]

  --props PATH   the props binary under test
  --work DIR     logs, reports and summary.json (default: mutation-work)
  --jobs N       props processes at once (default 2)
  --seeds N      detection must hold for --rc-seed=1..N (default 10)
  --fault NAME   check only this fault (repeatable; default: every fault)
  --budget S     seconds of CPU allowed to find the first counterexample at seed 1 (default 2)
  --model FILE   passed on to props (default: the model props loads)
  --no-control   skip the no-fault run (which must pass)
Exit status: 0 when every check holds, 1 when one fails (each failure is named), 2 on bad usage.
)";

Options parse_options(int argc, char** argv) {
  Options o;
  std::vector<std::string> a(argv + 1, argv + argc);
  for (size_t i = 0; i < a.size(); ++i) {
    auto value = [&]() -> const std::string& {
      if (i + 1 >= a.size()) fail("flag {} needs a value", a[i]);
      return a[++i];
    };
    auto number = [&](const std::string& flag, const std::string& v) {
      try {
        size_t used = 0;
        const double x = std::stod(v, &used);
        if (used != v.size() || x <= 0) throw std::invalid_argument(v);
        return x;
      } catch (const std::exception&) {
        fail("flag {} needs a positive number, got '{}'", flag, v);
      }
    };
    const std::string& f = a[i];
    if (f == "--help" || f == "-h") {
      std::printf("%s", kHelp);
      std::exit(kExitOk);
    } else if (f == "--props") {
      o.props = value();
    } else if (f == "--work") {
      o.work = value();
    } else if (f == "--model") {
      o.model = value();
    } else if (f == "--jobs") {
      o.jobs = static_cast<int>(number(f, value()));
    } else if (f == "--seeds") {
      o.seeds = static_cast<int>(number(f, value()));
    } else if (f == "--budget") {
      o.budget_s = number(f, value());
    } else if (f == "--fault") {
      const Fault fault = fault_from_name(value());
      if (fault == Fault::None)
        fail("--fault none: the no-fault run is the control, always on unless --no-control");
      o.faults.push_back(fault);
    } else if (f == "--no-control") {
      o.control = false;
    } else {
      fail("unknown argument '{}' (see mutation_check --help)", f);
    }
  }
  if (o.props.empty()) fail("--props PATH is required (the props binary under test)");
  if (!fs::exists(o.props)) fail("--props {}: no such file", o.props);
  if (o.faults.empty())
    for (Fault f : all_faults())
      if (f != Fault::None) o.faults.push_back(f);
  o.work = fs::absolute(o.work).string();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse_options(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "mutation_check: %s\n", e.what());
    return kExitRefused;
  }
  std::printf("mutation_check: %zu faults, seeds 1-%d, %d jobs, props %s\n", o.faults.size(), o.seeds, o.jobs,
              o.props.c_str());
  std::fflush(stdout);

  std::vector<FaultResult> results(o.faults.size());
  for (size_t i = 0; i < o.faults.size(); ++i) results[i].fault = o.faults[i];
  std::optional<ProcessResult> control;
  std::string control_model, control_sha256;
  std::string control_error;

  // Jobs: the control run first (it is the longest), then each fault's runs in order.
  std::atomic<size_t> next{0};
  std::mutex print;
  const size_t n_jobs = results.size() + (o.control ? 1 : 0);
  auto worker = [&] {
    for (size_t j; (j = next++) < n_jobs;) {
      if (o.control && j == 0) {
        try {
          const std::string dir = o.work + "/none";
          ProcessResult p;
          const PropsOutput out = run_props(props_args(o, Fault::None, 1, dir), dir, p);
          control = p;
          control_model = out.model;
          control_sha256 = "sha256 " + out.model_sha256;
        } catch (const std::exception& e) {
          control_error = e.what();
        }
        std::lock_guard<std::mutex> lock(print);
        std::printf("  done: control (no fault), %.1f s\n", control ? control->wall_s : 0.0);
        std::fflush(stdout);
        continue;
      }
      FaultResult& r = results[j - (o.control ? 1 : 0)];
      run_fault(o, r);
      std::lock_guard<std::mutex> lock(print);
      std::printf("  done: %s%s\n", to_string(r.fault), r.failures.empty() ? "" : " (with failures)");
      std::fflush(stdout);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.jobs); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();

  std::vector<std::string> failures;
  if (o.control) {
    if (!control_error.empty())
      failures.push_back("control: " + control_error);
    else if (control->exit_code != 0)
      failures.push_back(
          fmt::format("control: props without a fault exits {} (log {}): every detection below is void",
                      control->exit_code, log_path(o.work + "/none")));
    else
      std::printf("\ncontrol: props --rc-seed=1 with no fault passes (%.1f s wall, %.1f s CPU), model %s\n",
                  control->wall_s, control->cpu_s, control_model.c_str());
  }

  std::printf("\n%-18s %-4s %-24s %6s %4s  %-12s %-9s %7s %8s %8s  %s\n", "fault", "prop", "shrunk prompt",
              "tokens", "new", "site", "verdict", "detect", "shrunk", "before", "seeds 1-N (max detect)");
  std::vector<int> prompt_sizes, new_sizes;
  std::vector<std::string> slow;
  std::set<std::string> models;
  if (!control_model.empty()) models.insert({control_model, control_sha256});
  for (const auto& r : results) {
    int detected = 0;
    double max_cpu = 0.0;
    std::set<std::string> props_seen;
    for (const auto& s : r.seeds) {
      detected += s.detected ? 1 : 0;
      max_cpu = std::max(max_cpu, s.cpu_s);
      if (!s.property.empty()) props_seen.insert(s.property);
    }
    std::string seen;
    for (const auto& p : props_seen) seen += (seen.empty() ? "" : ",") + p;
    const double detect = r.seeds.empty() ? 0.0 : r.seeds.front().cpu_s;
    const std::string site = r.component.empty() ? "-" : site_text(r.layer, r.component, r.n_layer);
    std::printf("%-18s %-4s %-24s %6d %4d  %-12s %-9s %5.2f s %6.1f s %6.1f s  %d/%zu by %s (%.2f s)\n",
                to_string(r.fault), r.property.empty() ? "-" : r.property.c_str(),
                r.prompt_text.substr(0, 24).c_str(), r.prompt_tokens, r.new_tokens, site.c_str(),
                r.verdict.empty() ? "-" : r.verdict.c_str(), detect, r.shrink_line_s, r.before_s, detected,
                r.seeds.size(), seen.empty() ? "-" : seen.c_str(), max_cpu);
    for (const auto& sr : r.seeds)
      if (sr.seed != 1 && sr.cpu_s > o.budget_s)
        slow.push_back(fmt::format("{} at --rc-seed={}: {:.2f} s", to_string(r.fault), sr.seed, sr.cpu_s));
    models.insert(r.models.begin(), r.models.end());
    if (!r.property.empty()) {
      prompt_sizes.push_back(r.prompt_tokens);
      new_sizes.push_back(r.new_tokens);
    }
    for (const auto& f : r.failures) failures.push_back(fmt::format("{}: {}", to_string(r.fault), f));
  }
  std::printf(
      "  (tokens: prompt tokens of the shrunk case, all prompts and any resumed chunk; new: tokens drawn;\n"
      "   detect: CPU seconds of props --rc-noshrink on the detecting property at seed 1, from process start "
      "to\n"
      "   the first counterexample's report; shrunk: props' wall time for that property with shrinking;\n"
      "   before: props' wall time for the properties that pass before it in the default run)\n");
  if (!slow.empty()) {
    std::printf(
        "  detection above %.1f s of CPU at other seeds (reported, not failed: the budget is for the default "
        "seed):\n",
        o.budget_s);
    for (const auto& s : slow) std::printf("    %s\n", s.c_str());
  }
  // A model that lands or changes mid-run would mix two models' results.
  int labels = 0, hashes = 0;
  std::string seen_models;
  for (const auto& m : models) {
    (m.rfind("sha256 ", 0) == 0 ? hashes : labels) += 1;
    seen_models += (seen_models.empty() ? "" : "; ") + m;
  }
  if (labels > 1 || hashes > 1)
    failures.push_back(fmt::format("the model changed during the run ({}): run again", seen_models));
  if (!prompt_sizes.empty())
    std::printf(
        "\nshrunk sizes over %zu faults: prompt tokens median %.1f, max %d; new tokens median %.1f, max %d\n",
        prompt_sizes.size(), median(prompt_sizes),
        *std::max_element(prompt_sizes.begin(), prompt_sizes.end()), median(new_sizes),
        *std::max_element(new_sizes.begin(), new_sizes.end()));

  // The located share: of the mutants the default run kills, how many reports name a site or a
  // named cause, and how many name the documented one.
  int killed = 0, located = 0, at_site = 0;
  for (const auto& r : results) {
    if (r.property.empty()) continue;
    ++killed;
    located += r.located ? 1 : 0;
    at_site += r.at_site ? 1 : 0;
  }
  std::printf("\nkilled %d of %zu mutants; located %d of %d; at the documented site %d of %d\n", killed,
              results.size(), located, killed, at_site, killed);

  nlohmann::json summary = {
      {"props", o.props}, {"model", control_model}, {"seeds", o.seeds}, {"faults", nlohmann::json::array()}};
  for (const auto& r : results) summary["faults"].push_back(to_json(r));
  summary["killed"] = killed;
  summary["located"] = located;
  summary["at_documented_site"] = at_site;
  summary["failures"] = failures;
  fs::create_directories(o.work);
  std::ofstream(o.work + "/summary.json") << summary.dump(2) << "\n";

  if (failures.empty()) {
    std::printf("\nmutation_check: all %zu faults detected, shrunk, located and timed as documented\n",
                results.size());
    return kExitOk;
  }
  std::printf("\nmutation_check: %zu failure(s):\n", failures.size());
  for (const auto& f : failures) std::printf("  FAIL %s\n", f.c_str());
  return kExitFailed;
}
