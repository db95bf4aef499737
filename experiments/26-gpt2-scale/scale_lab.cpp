// scale_lab: the GPT-2-small-shaped model (scripts/make-gpt2-small) through our whole path, in
// one run: how long our engine takes to load it and what it holds resident, how long llama.cpp
// takes to load its GGUF, and the round trip: llama.cpp's logits against ours, within the
// tolerance derived before any measurement (src/llamacpp/tolerance.h). Two cases: a prompt with
// our greedy continuation of 64 tokens (recompute and cached path, F16 and F32 KV cache), and a
// full context of max_seq_len = 1024 positions over ids spread across the whole vocabulary
// (reserved tokens included). Exit 0 when every difference is within its tolerance, 1 if not.
//
// usage: scale_lab --model FILE --gguf FILE [--out results.json]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/exit_status.h"
#include "base/machine.h"
#include "corpus/tokenizer.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "llamacpp/llamacpp_engine.h"
#include "llamacpp/tolerance.h"
#include "model/model_file.h"

namespace miniinfer {
namespace {

using nlohmann::ordered_json;

constexpr int kNewTokens = 64;
constexpr const char* kPrompt = "<bos> the car";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Diff {
  double max = 0.0, sum = 0.0, scale = 0.0;  // largest |d|, sum of |d|, largest |ours|
  size_t n = 0;
  void add(std::span<const float> ours, std::span<const float> theirs) {
    if (ours.size() != theirs.size()) fail("scale_lab: {} logits against {}", ours.size(), theirs.size());
    for (size_t i = 0; i < ours.size(); ++i) {
      max = std::max(max, std::fabs(static_cast<double>(ours[i]) - theirs[i]));
      sum += std::fabs(static_cast<double>(ours[i]) - theirs[i]);
      scale = std::max(scale, std::fabs(static_cast<double>(ours[i])));
    }
    n += ours.size();
  }
};

// One line per check, and its record; false when the difference exceeds the tolerance.
bool report(ordered_json& checks, const std::string& name, const Diff& d, const LogitTolerance& tol) {
  const bool ok = d.max <= tol.tol;
  std::printf(
      "%-4s %-40s %9zu logits: max |d| %.3g = %.2g of tol %.3g; mean |d| %.3g; largest |logit| %.3g\n",
      ok ? "ok" : "FAIL", name.c_str(), d.n, d.max, d.max / tol.tol, tol.tol,
      d.sum / static_cast<double>(d.n), d.scale);
  checks.push_back({{"check", name},
                    {"logits", d.n},
                    {"max_abs_diff", d.max},
                    {"mean_abs_diff", d.sum / static_cast<double>(d.n)},
                    {"tolerance", tol.tol},
                    {"fraction_of_tolerance", d.max / tol.tol},
                    {"largest_abs_logit", d.scale},
                    {"ok", ok}});
  return ok;
}

// Ids 0, 49, 98, ... modulo V: every stretch of the vocabulary, the reserved tokens included.
std::vector<int> spread_ids(int count, int vocab_size) {
  std::vector<int> ids(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i)
    ids[static_cast<size_t>(i)] = static_cast<int>((int64_t{i} * 49) % vocab_size);
  return ids;
}

struct Greedy {
  std::vector<int> prompt, tokens;  // the prompt, and it followed by 63 of our 64 greedy tokens
  std::vector<float> step_logits;   // (64, V): our cached path's logits at each step
};

Greedy our_greedy(Engine& ours, const Model& model) {
  Greedy g;
  g.prompt = Tokenizer(model.vocab).encode(kPrompt);
  GenerateOptions o;
  o.max_new_tokens = kNewTokens;
  o.return_logits = true;
  GenerateResult r = generate(ours, {g.prompt}, o);
  g.tokens = g.prompt;
  g.tokens.insert(g.tokens.end(), r.tokens[0].begin(), r.tokens[0].end() - 1);
  g.step_logits = std::move(r.logits[0]);
  return g;
}

// llama.cpp's cached path fed our tokens: the prefill, then one decode step per token.
Diff cached_diff(LlamaCpp& llama, const Greedy& g, size_t V) {
  Diff d;
  llama.reset();
  d.add(std::span(g.step_logits).first(V), llama.forward_cached(0, g.prompt));
  for (size_t s = 1; s < kNewTokens; ++s)
    d.add(std::span(g.step_logits).subspan(s * V, V),
          llama.forward_cached(0, std::span(g.tokens).subspan(g.prompt.size() + s - 1, 1)));
  return d;
}

int run(const std::string& model_path, const std::string& gguf, const std::string& out) {
  ordered_json results;
  auto start = std::chrono::steady_clock::now();
  const Model model = read_model(model_path);
  const double read_s = seconds_since(start);
  start = std::chrono::steady_clock::now();
  Engine ours(model);
  const double engine_s = seconds_since(start);
  const double rss_mb = process_status_mib("VmRSS");
  const Config& c = model.config;
  std::printf("model %s: V %d, D %d, L %d, H %d, F %d, max_seq_len %d; %lld parameters\n", model_path.c_str(),
              c.vocab_size, c.d_model, c.n_layer, c.n_head, c.d_ff, c.max_seq_len,
              static_cast<long long>(parameter_count(c)));
  std::printf("ours: read in %.2f s, engine built in %.2f s; resident %.0f MB (peak %.0f MB)\n", read_s,
              engine_s, rss_mb, process_status_mib("VmHWM"));
  results["model"] = {{"config", nlohmann::json::parse(config_to_json(c))},
                      {"parameters", parameter_count(c)}};
  results["ours"] = {{"read_seconds", read_s}, {"engine_seconds", engine_s}, {"resident_mb", rss_mb}};

  const size_t V = static_cast<size_t>(c.vocab_size);
  start = std::chrono::steady_clock::now();
  const Greedy g = our_greedy(ours, model);
  const std::vector<float> ours_greedy = ours.forward_uncached(g.tokens, true);
  const std::vector<int> context = spread_ids(c.max_seq_len, c.vocab_size);
  const std::vector<float> ours_context = ours.forward_uncached(context, true);
  results["ours"]["logits_seconds"] = seconds_since(start);

  bool ok = true;
  ordered_json checks = ordered_json::array();
  for (KvType kv : {KvType::F16, KvType::F32}) {
    const LogitTolerance tol = logit_tolerance(model, kv);
    const double rss_before = process_status_mib("VmRSS");
    start = std::chrono::steady_clock::now();
    LlamaCpp llama(gguf, {.kv_type = kv});
    const double load_s = seconds_since(start);
    std::printf("llama.cpp, %s KV cache: loaded in %.2f s, %.0f MB more resident\n", to_string(kv), load_s,
                process_status_mib("VmRSS") - rss_before);
    results[std::string("llamacpp_") + to_string(kv)] = {
        {"load_seconds", load_s}, {"added_resident_mb", process_status_mib("VmRSS") - rss_before}};
    const std::string kv_name = std::string(", ") + to_string(kv) + " KV";
    Diff recompute, cached, full;
    recompute.add(ours_greedy, llama.forward_uncached(g.tokens, true));
    ok &= report(checks, "greedy-64 recompute" + kv_name, recompute, tol);
    ok &= report(checks, "greedy-64 cached path" + kv_name, cached_diff(llama, g, V), tol);
    full.add(ours_context, llama.forward_uncached(context, true));
    ok &= report(checks, "context-1024 recompute" + kv_name, full, tol);
  }
  results["checks"] = checks;
  results["greedy_prompt"] = kPrompt;
  if (!out.empty()) write_file_atomic(out, results.dump(2) + "\n");
  return ok ? kExitOk : kExitFailed;
}

}  // namespace
}  // namespace miniinfer

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  if (argc % 2 == 0 || !flags.count("--model") || !flags.count("--gguf")) {
    std::fprintf(stderr, "usage: scale_lab --model FILE --gguf FILE [--out results.json]\n");
    return miniinfer::kExitRefused;
  }
  try {
    return miniinfer::run(flags["--model"], flags["--gguf"], flags.count("--out") ? flags["--out"] : "");
  } catch (const miniinfer::Error& e) {
    std::fprintf(stderr, "scale_lab: %s\n", e.what());
    return miniinfer::kExitRefused;
  }
}
