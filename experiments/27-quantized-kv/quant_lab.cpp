// 27-quantized-kv: what the quantized K/V cache (src/engine/quant_cache.h) costs in accuracy and
// saves in memory, on the shipped model and the lab's 50 prompts
// (experiments/22-cache-correctness/results.json), and that it stays exact: in every format the
// cached path equals full recompute bit for bit.
//
// For each mode (bf16; int8; int8 with a residual of 16 and of 64 float rows):
//   accuracy  the float32 cache's greedy continuation (64 tokens) of each prompt is recomputed
//             in the mode (one uncached pass over prompt + continuation, every row), and each of
//             the 64 rows' logits is compared with float32's: quantiles of |delta logit| over all
//             50 x 64 x V values;
//   agreement the mode's own greedy continuation against float32's: continuations equal in full,
//             and the tokens equal before the first that differs;
//   exactness the mode's cached generation against its uncached one: tokens and every logit's
//             bytes;
//   memory    the bytes the mode allocates for the cache at the model's capacity (batch 1 and 8):
//             codes, scales and residual rows, and the per-layer working rows, against float32's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/sha256.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "lab_common.h"
#include "model/model_file.h"

using namespace miniinfer;
using lab::Json;

namespace {

constexpr const char* kHelp = R"(quant_lab: the quantized K/V cache's accuracy, token agreement, exactness and bytes against the
float32 cache, on the lab's 50 prompts; writes results.json and report.md.

usage: quant_lab [--model FILE] [--out DIR]

  --model FILE   the model (default: the shipped one); its sha256 must be the one
                 experiments/22-cache-correctness/results.json names
  --out DIR      where results.json and report.md go (default: experiments/27-quantized-kv)
)";

constexpr int kNewTokens = 64;

struct Mode {
  const char* name;
  KvQuant format;
  int residual;
};
constexpr Mode kModes[] = {{"bf16", KvQuant::Bf16, 0},
                           {"int8", KvQuant::Int8, 0},
                           {"int8, residual 16", KvQuant::Int8, 16},
                           {"int8, residual 64", KvQuant::Int8, 64}};

EngineOptions options(KvQuant format, int residual, int batch = 1) {
  EngineOptions o;
  o.batch = batch;
  o.threads = 1;
  o.kv_quant = format;
  o.kv_residual = residual;
  return o;
}

GenerateResult greedy(Engine& engine, const std::vector<int>& prompt, bool cache) {
  GenerateOptions o;
  o.max_new_tokens = kNewTokens;
  o.temperature = 0.0f;
  o.return_logits = true;
  o.cache = cache;
  return generate(engine, {prompt}, o);
}

double quantile(std::vector<float>& xs, double q) {
  const size_t k = std::min(xs.size() - 1, static_cast<size_t>(q * static_cast<double>(xs.size() - 1) + 0.5));
  std::nth_element(xs.begin(), xs.begin() + static_cast<long>(k), xs.end());
  return xs[k];
}

struct Bytes {
  size_t storage = 0, working = 0, recompute = 0;  // recompute: full recompute's own cache, batch 1
};

Bytes cache_bytes(const Model& model, const Mode& m, int batch) {
  Engine e(model, options(m.format, m.residual, batch));
  const Config& c = model.config;
  const QuantKvCache scratch(c.n_layer, 1, c.n_head, c.d_head(), c.max_seq_len, m.format, m.residual);
  return {e.quantized()->storage_bytes(), e.quantized()->working_bytes(), scratch.storage_bytes() + scratch.working_bytes()};
}

Json run_mode(const Mode& m, const Model& model, const std::vector<std::vector<int>>& prompts,
              const std::vector<GenerateResult>& f32, const std::vector<std::vector<float>>& f32_rows, Json& row) {
  const int V = model.config.vocab_size;
  Engine engine(model, options(m.format, m.residual));
  std::vector<float> deltas;
  int equal_runs = 0, leading_sum = 0, exact = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int> all = prompts[i];
    all.insert(all.end(), f32[i].tokens[0].begin(), f32[i].tokens[0].end() - 1);
    const std::vector<float> rows = engine.forward_uncached(all, true);
    const size_t from = (prompts[i].size() - 1) * static_cast<size_t>(V);
    for (size_t j = from; j < rows.size(); ++j) deltas.push_back(std::fabs(rows[j] - f32_rows[i][j]));
    const GenerateResult cached = greedy(engine, prompts[i], true), full = greedy(engine, prompts[i], false);
    exact += cached.tokens == full.tokens && !lab::first_byte_difference(cached.logits[0], full.logits[0]);
    const auto& a = cached.tokens[0];
    const auto& b = f32[i].tokens[0];
    const int leading = static_cast<int>(std::mismatch(a.begin(), a.end(), b.begin()).first - a.begin());
    leading_sum += leading;
    equal_runs += leading == kNewTokens;
  }
  const size_t f32_bytes = 2ull * model.config.n_layer * model.config.max_seq_len * model.config.d_model * sizeof(float);
  const Bytes b1 = cache_bytes(model, m, 1), b8 = cache_bytes(model, m, 8);
  row = {{"mode", m.name},
         {"p50", quantile(deltas, 0.5)},
         {"p90", quantile(deltas, 0.9)},
         {"p99", quantile(deltas, 0.99)},
         {"p999", quantile(deltas, 0.999)},
         {"max", *std::max_element(deltas.begin(), deltas.end())},
         {"equal_continuations", equal_runs},
         {"mean_leading_equal_tokens", static_cast<double>(leading_sum) / static_cast<double>(prompts.size())},
         {"cached_equals_uncached", exact},
         {"storage_bytes_batch1", b1.storage},
         {"working_bytes_batch1", b1.working},
         {"recompute_bytes", b1.recompute},
         {"storage_bytes_batch8", b8.storage},
         {"working_bytes_batch8", b8.working},
         {"f32_bytes_batch1", f32_bytes},
         {"f32_bytes_batch8", 8 * f32_bytes}};
  std::printf("quant_lab: %-18s |delta| p50 %.3g p99 %.3g max %.3g, %d/50 continuations equal, %d/50 exact\n", m.name,
              row["p50"].get<double>(), row["p99"].get<double>(), row["max"].get<double>(), equal_runs, exact);
  return row;
}

std::string report(const Json& results) {
  std::string md =
      "# 27-quantized-kv: the quantized K/V cache against float32, on the lab's 50 prompts\n\n"
      "Regenerated by `experiments/27-quantized-kv/regen.sh BUILD` (results.json beside it). The shipped\n"
      "model (" + results["model_sha256"].get<std::string>().substr(0, 16) + "...), 64 greedy tokens per prompt, one thread.\n\n"
      "|delta logit|: each mode's logits on float32's greedy continuation (one uncached pass, every row) against\n"
      "float32's, over 50 x 64 x V values. Agreement: the mode's own greedy continuation against float32's.\n"
      "Exact: prompts whose cached generation equals the mode's full recompute in tokens and every logit's bytes.\n"
      "Bytes at the model's capacity (" + std::to_string(results["capacity"].get<int>()) + " slots): the cache proper (codes, scales, residual\n"
      "float rows) and the per-layer float working rows attention reads, against the float32 cache; and every K/V\n"
      "buffer the engine allocates (cache, working rows, full recompute's own cache of batch 1) against float32's\n"
      "(its cache and recompute's float scratch of batch 1).\n\n"
      "| mode | p50 | p90 | p99 | p99.9 | max | continuations equal | tokens equal before the first difference (mean) | exact (cached = uncached) | cache bytes, batch 1 (vs f32) | working rows, batch 1 | cache bytes, batch 8 (vs f32) | all K/V buffers, batch 1 (vs f32) | all K/V buffers, batch 8 (vs f32) |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Json& r : results["modes"]) {
    const double s1 = r["storage_bytes_batch1"].get<double>(), f1 = r["f32_bytes_batch1"].get<double>();
    const double s8 = r["storage_bytes_batch8"].get<double>(), f8 = r["f32_bytes_batch8"].get<double>();
    const double w1 = r["working_bytes_batch1"].get<double>(), rc = r["recompute_bytes"].get<double>();
    const double all1 = s1 + w1 + rc, all8 = s8 + 8 * w1 + rc;
    md += fmt::format("| {} | {:.3g} | {:.3g} | {:.3g} | {:.3g} | {:.3g} | {}/50 | {:.1f} | {}/50 | {} ({:.3f}x) | {} | {} ({:.3f}x) | {:.0f} ({:.3f}x) | {:.0f} ({:.3f}x) |\n",
                      r["mode"].get<std::string>(), r["p50"].get<double>(), r["p90"].get<double>(),
                      r["p99"].get<double>(), r["p999"].get<double>(), r["max"].get<double>(),
                      r["equal_continuations"].get<int>(), r["mean_leading_equal_tokens"].get<double>(),
                      r["cached_equals_uncached"].get<int>(), r["storage_bytes_batch1"].get<size_t>(), s1 / f1,
                      r["working_bytes_batch1"].get<size_t>(), r["storage_bytes_batch8"].get<size_t>(), s8 / f8, all1,
                      all1 / (2 * f1), all8, all8 / (f8 + f1));
  }
  md += fmt::format("\nThe float32 cache: {} bytes at batch 1, {} at batch 8.\n",
                    results["modes"][0]["f32_bytes_batch1"].get<size_t>(), results["modes"][0]["f32_bytes_batch8"].get<size_t>());
  return md;
}

int run(int argc, char** argv) {
  const lab::Flags flags(argc, argv, {"model", "out"}, {"help"});
  if (flags.has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const std::string model_path = flags.get("model", lab::default_model_path());
  const std::string out_dir = flags.get("out", lab::experiment_dir("27-quantized-kv"));
  const std::string sha = file_sha256(model_path);
  const Model model = read_model(model_path);
  const Json r22 = lab::lab22_results(model_path, sha);
  std::vector<std::vector<int>> prompts;
  for (const auto& p : r22.at("prompts")) prompts.push_back(p.at("prompt_ids").get<std::vector<int>>());

  Engine f32_engine(model, options(KvQuant::F32, 0));
  std::vector<GenerateResult> f32;
  std::vector<std::vector<float>> f32_rows;
  for (const auto& prompt : prompts) {
    f32.push_back(greedy(f32_engine, prompt, true));
    std::vector<int> all = prompt;
    all.insert(all.end(), f32.back().tokens[0].begin(), f32.back().tokens[0].end() - 1);
    f32_rows.push_back(f32_engine.forward_uncached(all, true));
  }
  Json modes = Json::array();
  int not_exact = 0;
  for (const Mode& m : kModes) {
    Json row;
    modes.push_back(run_mode(m, model, prompts, f32, f32_rows, row));
    not_exact += 50 - row["cached_equals_uncached"].get<int>();
  }
  const Json results = {{"experiment", "27-quantized-kv"},
                        {"model_sha256", sha},
                        {"prompts_from", "experiments/22-cache-correctness/results.json"},
                        {"new_tokens", kNewTokens},
                        {"capacity", model.config.max_seq_len},
                        {"modes", modes}};
  lab::ensure_dir(out_dir);
  lab::write_json(out_dir + "/results.json", results);
  write_file_atomic(out_dir + "/report.md", report(results));
  std::printf("quant_lab: wrote %s/results.json and report.md\n", lab::display_path(out_dir).c_str());
  return not_exact == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_lab: %s\n", e.what());
    return 1;
  }
}
