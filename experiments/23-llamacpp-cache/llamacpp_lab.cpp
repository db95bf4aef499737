// 23-llamacpp-cache: lab 02's property and its extended runs on llama.cpp, through props' engine
// interface (props/engines.h), under several llama.cpp configurations. The prompts,
// seeds and schedules are the ones 22-cache-correctness ran on our engine, read from its
// committed results.json, so the two experiments run the very same cases.
//
// For every run it records how equal the cached path and full recompute were at each level
// (props/level.h): bit-identical, tokens equal with the largest ULP distance of a logit, or
// tokens that part. Per configuration, the finest level that held in every run.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/machine.h"
#include "base/sha256.h"
#include "lab_common.h"
#include "model/model_file.h"
#include "props/engine_registry.h"
#include "props/engines.h"
#include "props/level.h"
#include "props/scenario.h"

using namespace miniinfer;
using namespace miniinfer::props;
using lab::Json;

namespace {

constexpr const char* kHelp = R"(llamacpp_lab: lab 02's property (cached generation against full recompute, 50 prompts x 64
new tokens) and its extended runs (256 tokens, batches of 4, q_len > 1 resume) on llama.cpp,
under each configuration; writes results.json and manifest.json.

usage: llamacpp_lab --gguf FILE [--model FILE] [--out DIR] [--config NAME]

  --gguf FILE    the model as GGUF (minigpt export-gguf --out FILE --model MODEL)
  --model FILE   the model the GGUF was exported from (default: the shipped one); its sha256
                 must be the one experiments/22-cache-correctness/results.json names
  --out DIR      where results.json and manifest.json go (default: experiments/23-llamacpp-cache)
  --config NAME  run one configuration only, and write nothing (defaults, f32-kv, threads-2,
                 flash-on, ubatch-1)
)";

struct Configuration {
  std::string name, what;
  nlohmann::json settings;  // the llamacpp engine's (props/engines_llamacpp.cpp)
};

std::vector<Configuration> configurations(const std::string& gguf) {
  const nlohmann::json base = {{"gguf", gguf}, {"gguf_sha256", ""}, {"kv", "f16"},
                               {"threads", 1},  {"flash", "off"},    {"ubatch", 0}};
  std::vector<Configuration> out;
  out.push_back({"defaults", "F16 KV cache (llama.cpp's default), 1 thread, flash attention off", base});
  nlohmann::json s = base;
  s["kv"] = "f32";
  out.push_back({"f32-kv", "F32 KV cache, 1 thread, flash attention off", s});
  s = base;
  s["threads"] = 2;
  out.push_back({"threads-2", "F16 KV cache, 2 threads, flash attention off", s});
  s = base;
  s["flash"] = "on";
  out.push_back({"flash-on", "F16 KV cache, 1 thread, flash attention on", s});
  // Every physical batch one row: full recompute then computes each row as a decode does.
  s = base;
  s["ubatch"] = 1;
  out.push_back({"ubatch-1", "F16 KV cache, 1 thread, flash attention off, n_ubatch = 1", s});
  return out;
}

// A prompt as 22-cache-correctness ran it.
struct Prompt {
  std::vector<int> ids;
  uint64_t seed = 0;
  std::string text;
};

// How one kind of run went over its cases.
struct Tally {
  int runs = 0, bit_identical = 0, tokens_equal = 0;
  uint64_t max_ulp = 0;
  double max_abs = 0.0;
  int first_token_step = -1;  // the earliest step at which tokens parted
  Json cases = Json::array();
  void add(const Closeness& c, Json record) {
    ++runs;
    bit_identical += c.bit_identical();
    tokens_equal += c.tokens_equal();
    max_ulp = std::max(max_ulp, c.max_ulp);
    max_abs = std::max(max_abs, c.max_abs);
    if (c.token_step >= 0 && (first_token_step < 0 || c.token_step < first_token_step)) first_token_step = c.token_step;
    record["levels"] = c.describe();
    record["first_logits_step"] = c.bits_step < 0 ? Json(nullptr) : Json(c.bits_step);
    record["first_token_step"] = c.token_step < 0 ? Json(nullptr) : Json(c.token_step);
    record["max_ulp"] = c.max_ulp;
    record["max_abs"] = c.max_abs;
    cases.push_back(std::move(record));
  }
  Json json() const {
    return {{"runs", runs},
            {"bit_identical", bit_identical},
            {"tokens_equal", tokens_equal},
            {"max_ulp", max_ulp},
            {"max_abs", max_abs},
            {"first_token_step", first_token_step < 0 ? Json(nullptr) : Json(first_token_step)},
            {"cases", cases}};
  }
};

// The finest level that held in every run of these tallies.
std::string finest_level(const std::vector<const Tally*>& tallies) {
  bool bits = true, tokens = true;
  uint64_t ulp = 0;
  for (const Tally* t : tallies) {
    bits = bits && t->bit_identical == t->runs;
    tokens = tokens && t->tokens_equal == t->runs;
    ulp = std::max(ulp, t->max_ulp);
  }
  if (bits) return "bits";
  if (tokens) return fmt::format("ulp:{}", ulp);
  return "none (tokens part)";
}

GenerateOptions options(uint64_t seed, int new_tokens, bool cache) {
  GenerateOptions o;
  o.seed = seed;
  o.max_new_tokens = new_tokens;
  o.temperature = 0.8f;
  o.cache = cache;
  o.return_logits = true;
  return o;
}

Closeness compare(EngineUnderTest& e, const std::vector<std::vector<int>>& prompts, uint64_t seed, int n) {
  const GenerateResult a = e.generate(prompts, options(seed, n, true));
  const GenerateResult b = e.generate(prompts, options(seed, n, false));
  return compare_runs(a.tokens[0], b.tokens[0], a.logits[0], b.logits[0], e.vocab_size());
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Json run_configuration(const Configuration& cfg, const Model& model, const std::vector<Prompt>& prompts) {
  const auto t0 = std::chrono::steady_clock::now();
  auto e = kLlamaCpp.make(cfg.settings, model, 4, model.config.max_seq_len);
  Tally main, longer, batch, resume;
  // The lab's property: each prompt, 64 new tokens, cached against full recompute.
  for (size_t i = 0; i < prompts.size(); ++i)
    main.add(compare(*e, {prompts[i].ids}, prompts[i].seed, 64), {{"index", i}, {"text", prompts[i].text}});
  // 256 new tokens on prompts 0, 5, ..., 45.
  for (size_t i = 0; i < prompts.size(); i += 5)
    longer.add(compare(*e, {prompts[i].ids}, prompts[i].seed, 256), {{"index", i}});
  // Batches {j, 10+j, 20+j, 40+j}, seed 500+j, 64 tokens: each sequence of the cached batch
  // against its own full recompute run alone (the same coins: first_stream = its slot).
  for (int j = 0; j < 10; ++j) {
    const std::vector<int> members = {j, 10 + j, 20 + j, 40 + j};
    std::vector<std::vector<int>> ids;
    for (int m : members) ids.push_back(prompts[static_cast<size_t>(m)].ids);
    const uint64_t seed = 500 + static_cast<uint64_t>(j);
    const GenerateResult cached = e->generate(ids, options(seed, 64, true));
    for (size_t s = 0; s < ids.size(); ++s) {
      GenerateOptions solo = options(seed, 64, false);
      solo.first_stream = s;
      const GenerateResult ref = e->generate({ids[s]}, solo);
      batch.add(compare_runs(cached.tokens[s], ref.tokens[0], cached.logits[s], ref.logits[0], e->vocab_size()),
                {{"batch", j}, {"slot", s}, {"index", members[s]}});
    }
  }
  // Resume with q_len > 1: the prompt, 4 drawn tokens, prompt (i+1) mod 50 appended in one
  // chunk, 12 more drawn tokens; seed 700 + i.
  for (size_t i = 0; i < prompts.size(); ++i) {
    Script s;
    s.seed = 700 + i;
    s.sampler = {0.8f, 0, 1.0f};
    s.ops = {{Op::Append, prompts[i].ids, 0, 0},
             {Op::Generate, {}, 4, 0},
             {Op::Append, prompts[(i + 1) % prompts.size()].ids, 0, 0},
             {Op::Generate, {}, 12, 0}};
    e->clean_slate();
    const ScriptRun a = run_script(*e, s, true), b = run_script(*e, s, false);
    resume.add(compare_runs(a.generated, b.generated, flat_logits(a.logits), flat_logits(b.logits), e->vocab_size()),
               {{"index", i}});
  }
  const double seconds = seconds_since(t0);
  const std::string level = finest_level({&main, &longer, &batch, &resume});
  std::printf("llamacpp_lab: %-10s main %2d/%d bit-identical, %2d/%d tokens equal; 256: %d/%d, %d/%d; batch: %d/%d, "
              "%d/%d; resume: %d/%d, %d/%d; finest level %s (%.1f s)\n",
              cfg.name.c_str(), main.bit_identical, main.runs, main.tokens_equal, main.runs, longer.bit_identical,
              longer.runs, longer.tokens_equal, longer.runs, batch.bit_identical, batch.runs, batch.tokens_equal,
              batch.runs, resume.bit_identical, resume.runs, resume.tokens_equal, resume.runs, level.c_str(), seconds);
  std::fflush(stdout);
  return {{"name", cfg.name},
          {"what", cfg.what},
          {"settings", Json::parse(cfg.settings.dump())},
          {"finest_level", level},
          {"main_50x64", main.json()},
          {"long_256", longer.json()},
          {"batch_4", batch.json()},
          {"resume", resume.json()}};
}

int run(int argc, char** argv) {
  const lab::Flags flags(argc, argv, {"gguf", "model", "out", "config"}, {"help"});
  if (flags.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (!flags.has("gguf")) fail("llamacpp_lab: --gguf FILE is required (see --help)");
  const std::string gguf = source_relative_path(flags.get("gguf", ""));
  if (!std::filesystem::is_regular_file(open_path(gguf))) fail("--gguf {}: no such file", flags.get("gguf", ""));
  const std::string model_path = flags.get("model", lab::default_model_path());
  const std::string out_dir = flags.get("out", lab::experiment_dir("23-llamacpp-cache"));
  const std::string sha = file_sha256(model_path);
  const Model model = read_model(model_path);
  const Json r22 = lab::lab22_results(model_path, sha);
  std::vector<Prompt> prompts;
  for (const auto& p : r22.at("prompts"))
    prompts.push_back({p.at("prompt_ids").get<std::vector<int>>(), p.at("gen_seed").get<uint64_t>(),
                       p.at("text").get<std::string>()});

  Json configs = Json::array();
  for (const auto& cfg : configurations(gguf)) {
    if (flags.has("config") && flags.get("config", "") != cfg.name) continue;
    configs.push_back(run_configuration(cfg, model, prompts));
  }
  if (configs.empty()) fail("--config {}: no such configuration", flags.get("config", ""));
  if (flags.has("config")) return 0;

  Json results = {{"experiment", "23-llamacpp-cache"},
                  {"model_sha256", sha},
                  {"gguf_sha256", file_sha256(open_path(gguf))},
                  {"prompts_from", "experiments/22-cache-correctness/results.json"},
                  {"configurations", configs}};
  lab::ensure_dir(out_dir);
  lab::write_json(out_dir + "/results.json", results);

  Json table = Json::array();
  for (const auto& c : configs) table.push_back({{"configuration", c["name"]}, {"finest_level", c["finest_level"]}});
  const std::string third_party = lab::source_dir() + "/third_party.sha256";
  const std::string version = lab::source_dir() + "/third_party/llama.cpp/VERSION";
  Json npm = Json::object();
  std::istringstream lines(read_file(third_party));
  for (std::string line; std::getline(lines, line);)
    if (const auto sp = line.find("  "); sp != std::string::npos) npm[line.substr(sp + 2)] = line.substr(0, sp);
  std::string release = read_file(version);
  while (!release.empty() && release.back() == '\n') release.pop_back();
  Json manifest = {{"experiment", "23-llamacpp-cache"},
                   {"date", lab::today_utc()},
                   {"command", "scripts/regen-experiments (llamacpp_lab --gguf GGUF, then props per configuration)"},
                   {"llama_cpp", release},
                   {"npm_packages_sha256", npm},
                   {"model_file", lab::display_path(model_path)},
                   {"model_sha256", sha},
                   {"gguf", "minigpt export-gguf of the model (starcoder2, F32 tensors)"},
                   {"gguf_sha256", results["gguf_sha256"]},
                   {"levels", table},
                   {"versions", lab::versions()},
                   // llama.cpp's bytes depend on the CPU and the ggml variant it picked (issue 28):
                   // the figures hold for this machine. Threads: 1, but 2 in threads-2.
                   {"machine", to_json(this_machine(1))}};
  lab::write_json(out_dir + "/manifest.json", manifest);
  std::printf("llamacpp_lab: wrote %s/results.json and manifest.json\n", lab::display_path(out_dir).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llamacpp_lab: %s\n", e.what());
    return 1;
  }
}
