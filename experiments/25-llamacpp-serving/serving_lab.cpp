// 25-llamacpp-serving: llama.cpp's prefix reuse (submit, props/engines_llamacpp.cpp) against a
// miss, on the lab's 50 prompts (experiments/22-cache-correctness/results.json), under several
// llama.cpp configurations, through props' engine interface.
//
// Prompt i is P_i. A = P_i P_{i+1}; B = P_i P_{i+2} (indices mod 50): B shares at least P_i
// with A. Four ways to reach B's prefix, each a "hit":
//   own    A on sequence 0, then B on sequence 0: B keeps A's cells of the common prefix
//          (llama_memory_seq_rm of the tail; llama-server's slot);
//   other  A on sequence 0, then B on sequence 1: the prefix by llama_memory_seq_cp;
//   freed  A on sequence 0, free(0), then B on sequence 1: the same from a freed sequence;
//   whole  A on sequence 0, then A P_{i+3} on sequence 1: all of A shared, so sequence 1's new
//          cells follow the shared ones with no other sequence's cells between.
// The "miss" is B (or A P_{i+3}) submitted on a clean engine. After the submit, 16 greedy
// decode steps on the same sequence; the hit's 17 rows of logits and tokens against the miss's
// (props/level.h: bit-identical, tokens equal with the largest ULP distance, or tokens part).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/sha256.h"
#include "lab_common.h"
#include "model/model_file.h"
#include "props/engine_registry.h"
#include "props/engines.h"
#include "props/level.h"

using namespace miniinfer;
using namespace miniinfer::props;
using lab::Json;

namespace {

constexpr const char* kHelp = R"(serving_lab: llama.cpp's prefix reuse (a hit) against a miss, on the lab's 50 prompts, four ways
to reach the shared prefix (own cells, another sequence's by seq_cp, a freed sequence's, all of A
shared), under each configuration; writes results.json.

usage: serving_lab --gguf FILE [--model FILE] [--out DIR] [--config NAME]

  --gguf FILE    the model as GGUF (minigpt export-gguf --out FILE --model MODEL)
  --model FILE   the model the GGUF was exported from (default: the shipped one); its sha256
                 must be the one experiments/22-cache-correctness/results.json names
  --out DIR      where results.json goes (default: experiments/25-llamacpp-serving)
  --config NAME  run one configuration only, and write nothing (defaults, f32-kv, flash-on,
                 ubatch-1, ubatch-1-f32, holes, reorder, flash-ubatch-1, flash-holes,
                 flash-reorder)
)";

constexpr int kSteps = 16;  // greedy decode steps after the submit

struct Configuration {
  std::string name;
  nlohmann::json settings;  // the llamacpp engine's
};

std::vector<Configuration> configurations(const std::string& gguf) {
  const nlohmann::json base = {{"gguf", gguf}, {"gguf_sha256", ""}, {"kv", "f16"},
                               {"threads", 1},  {"flash", "off"},    {"ubatch", 0}};
  auto with = [&](std::initializer_list<std::pair<const char*, nlohmann::json>> changes) {
    nlohmann::json s = base;
    for (const auto& [k, v] : changes) s[k] = v;
    return s;
  };
  return {{"defaults", base},
          {"f32-kv", with({{"kv", "f32"}})},
          {"flash-on", with({{"flash", "on"}})},
          {"ubatch-1", with({{"ubatch", 1}})},
          {"ubatch-1-f32", with({{"ubatch", 1}, {"kv", "f32"}})},
          {"holes", with({{"ubatch", 1}, {"fragment", "holes:6"}})},
          {"reorder", with({{"ubatch", 1}, {"fragment", "reorder:6"}})},
          {"flash-ubatch-1", with({{"flash", "on"}, {"ubatch", 1}})},
          {"flash-holes", with({{"flash", "on"}, {"ubatch", 1}, {"fragment", "holes:6"}})},
          {"flash-reorder", with({{"flash", "on"}, {"ubatch", 1}, {"fragment", "reorder:6"}})}};
}

struct Tally {
  int runs = 0, bit_identical = 0, tokens_equal = 0, first_row_identical = 0;
  int reused_min = -1, reused_max = 0;
  uint64_t max_ulp = 0;
  double max_abs = 0.0;
  Json cases = Json::array();
  void add(int index, int reused, int expected, const Closeness& c, const Closeness& first) {
    ++runs;
    bit_identical += c.bit_identical();
    tokens_equal += c.tokens_equal();
    first_row_identical += first.bit_identical();
    reused_min = reused_min < 0 ? reused : std::min(reused_min, reused);
    reused_max = std::max(reused_max, reused);
    max_ulp = std::max(max_ulp, c.max_ulp);
    max_abs = std::max(max_abs, c.max_abs);
    if (reused != expected) fail("prompt {}: the hit reused {} tokens, the longest common prefix is {}", index, reused, expected);
    cases.push_back({{"index", index}, {"reused", reused}, {"levels", c.describe()}, {"max_ulp", c.max_ulp},
                     {"max_abs", c.max_abs}});
  }
  Json json() const {
    return {{"runs", runs},
            {"bit_identical", bit_identical},
            {"submit_logits_bit_identical", first_row_identical},
            {"tokens_equal", tokens_equal},
            {"reused_min", reused_min},
            {"reused_max", reused_max},
            {"max_ulp", max_ulp},
            {"max_abs", max_abs},
            {"cases", cases}};
  }
};

struct Run {
  std::vector<int> tokens;    // the greedy tokens drawn, kSteps + 1
  std::vector<float> logits;  // (kSteps + 1, V)
  int reused = 0;
};

int argmax(const float* row, int V) {
  int best = 0;
  for (int v = 1; v < V; ++v)
    if (row[v] > row[best]) best = v;
  return best;
}

// submit(seq, prompt), then kSteps greedy decodes on seq.
Run serve(EngineUnderTest& e, int seq, const std::vector<int>& prompt) {
  const int V = e.vocab_size();
  Run r;
  const Submitted s = e.submit(seq, prompt);
  r.reused = s.reused;
  r.logits = s.logits;
  for (int step = 0;; ++step) {
    const int t = argmax(r.logits.data() + static_cast<size_t>(step) * static_cast<size_t>(V), V);
    r.tokens.push_back(t);
    if (step == kSteps) break;
    const std::vector<float> next = e.forward_cached(seq, std::vector<int>{t}, false);
    r.logits.insert(r.logits.end(), next.begin(), next.end());
  }
  return r;
}

std::vector<int> concat(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<int> c = a;
  c.insert(c.end(), b.begin(), b.end());
  return c;
}

int common_prefix(const std::vector<int>& a, const std::vector<int>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return static_cast<int>(n);
}

Json run_configuration(const Configuration& cfg, const Model& model, const std::vector<std::vector<int>>& prompts) {
  const auto t0 = std::chrono::steady_clock::now();
  auto e = kLlamaCpp.make(cfg.settings, model, 4, model.config.max_seq_len);
  const int V = e->vocab_size();
  Tally own, other, freed, whole;
  const size_t n = prompts.size();
  for (size_t i = 0; i < n; ++i) {
    const std::vector<int> a = concat(prompts[i], prompts[(i + 1) % n]);
    const std::vector<int> b = concat(prompts[i], prompts[(i + 2) % n]);
    const std::vector<int> a3 = concat(a, prompts[(i + 3) % n]);
    const int lcp_b = std::min(common_prefix(a, b), static_cast<int>(b.size()) - 1);
    const int lcp_a3 = std::min(static_cast<int>(a.size()), static_cast<int>(a3.size()) - 1);
    e->clean_slate();
    const Run miss_b = serve(*e, 1, b);
    e->clean_slate();
    const Run miss_a3 = serve(*e, 1, a3);
    if (miss_b.reused != 0 || miss_a3.reused != 0) fail("prompt {}: a submit on a clean engine reused tokens", i);
    auto judge_hit = [&](Tally& tally, const Run& hit, const Run& miss, int expected) {
      const Closeness all = compare_runs(hit.tokens, miss.tokens, hit.logits, miss.logits, V);
      const std::vector<float> h0(hit.logits.begin(), hit.logits.begin() + V), m0(miss.logits.begin(), miss.logits.begin() + V);
      tally.add(static_cast<int>(i), hit.reused, expected, all, compare_logits(h0, m0, V));
    };
    e->clean_slate();
    e->submit(0, a);
    judge_hit(own, serve(*e, 0, b), miss_b, lcp_b);
    e->clean_slate();
    e->submit(0, a);
    judge_hit(other, serve(*e, 1, b), miss_b, lcp_b);
    e->clean_slate();
    e->submit(0, a);
    e->free(0);
    judge_hit(freed, serve(*e, 1, b), miss_b, lcp_b);
    e->clean_slate();
    e->submit(0, a);  // no decode steps on A: its cells are exactly A's
    judge_hit(whole, serve(*e, 1, a3), miss_a3, lcp_a3);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto line = [](const Tally& t) {
    return fmt::format("{}/{} ({} submit rows), tokens {}/{}", t.bit_identical, t.runs, t.first_row_identical,
                       t.tokens_equal, t.runs);
  };
  std::printf("serving_lab: %-12s bit-identical: own %s; other %s; freed %s; whole %s (%.1f s)\n", cfg.name.c_str(),
              line(own).c_str(), line(other).c_str(), line(freed).c_str(), line(whole).c_str(), seconds);
  std::fflush(stdout);
  return {{"name", cfg.name},
          {"settings", Json::parse(cfg.settings.dump())},
          {"own", own.json()},
          {"other", other.json()},
          {"freed", freed.json()},
          {"whole", whole.json()}};
}

int run(int argc, char** argv) {
  const lab::Flags flags(argc, argv, {"gguf", "model", "out", "config"}, {"help"});
  if (flags.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!flags.has("gguf")) fail("serving_lab: --gguf FILE is required (see --help)");
  const std::string gguf = source_relative_path(flags.get("gguf", ""));
  if (!std::filesystem::is_regular_file(open_path(gguf))) fail("--gguf {}: no such file", flags.get("gguf", ""));
  const std::string model_path = flags.get("model", lab::default_model_path());
  const std::string out_dir = flags.get("out", lab::experiment_dir("25-llamacpp-serving"));
  const std::string sha = file_sha256(model_path);
  const Model model = read_model(model_path);
  const Json r22 = lab::lab22_results(model_path, sha);
  std::vector<std::vector<int>> prompts;
  for (const auto& p : r22.at("prompts")) prompts.push_back(p.at("prompt_ids").get<std::vector<int>>());

  Json configs = Json::array();
  for (const auto& cfg : configurations(gguf)) {
    if (flags.has("config") && flags.get("config", "") != cfg.name) continue;
    configs.push_back(run_configuration(cfg, model, prompts));
  }
  if (configs.empty()) fail("--config {}: no such configuration", flags.get("config", ""));
  if (flags.has("config")) return 0;
  const Json results = {{"experiment", "25-llamacpp-serving"},
                        {"model_sha256", sha},
                        {"gguf_sha256", file_sha256(open_path(gguf))},
                        {"prompts_from", "experiments/22-cache-correctness/results.json"},
                        {"greedy_steps_after_submit", kSteps},
                        {"configurations", configs}};
  lab::ensure_dir(out_dir);
  lab::write_json(out_dir + "/results.json", results);
  std::printf("serving_lab: wrote %s/results.json\n", lab::display_path(out_dir).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serving_lab: %s\n", e.what());
    return 1;
  }
}
