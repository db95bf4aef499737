// Conformance: llama.cpp running our exported model against our engine, on the lab's 50
// prompts (experiments/22-cache-correctness/results.json, prompt_ids), each with our greedy
// continuation of 64 tokens. Checked, for llama.cpp's F16 KV cache (its default) and F32:
//  * full recompute, every row of prompt + 63 generated tokens: |d| <= tol (tolerance.h);
//  * the cached path fed our tokens (prefill, then 63 decode steps): |d| <= tol at every step;
//  * llama.cpp's own greedy run of 64 tokens: reported as agreement out of 50; where it
//    diverges, our top-2 gap at that step must be within 2 tol (a near tie the tolerance
//    allows to flip). A divergence at a clear margin fails.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "llamacpp/llamacpp_engine.h"
#include "llamacpp/llamacpp_test_util.h"
#include "llamacpp/tolerance.h"

namespace miniinfer {
namespace {

using testing::shipped_gguf;
using testing::shipped_model;

constexpr int kNewTokens = 64;

std::vector<std::vector<int>> lab_prompts() {
  const auto results = nlohmann::json::parse(
      read_file(std::string(MINIINFER_SOURCE_DIR) + "/experiments/22-cache-correctness/results.json"));
  std::vector<std::vector<int>> prompts;
  for (const auto& p : results.at("prompts")) prompts.push_back(p.at("prompt_ids").get<std::vector<int>>());
  return prompts;
}

int argmax(std::span<const float> row) {  // ties to the lowest id, as our sampler
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

double top2_gap(std::span<const float> row) {
  std::vector<float> r(row.begin(), row.end());
  std::partial_sort(r.begin(), r.begin() + 2, r.end(), std::greater<>());
  return static_cast<double>(r[0]) - r[1];
}

struct Diff {
  double max = 0.0, sum = 0.0;
  size_t n = 0;
  void add(std::span<const float> a, std::span<const float> b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
      max = std::max(max, d);
      sum += d;
      ++n;
    }
  }
};

void conformance(KvType kv_type, bool flash_attn = false) {
  const Model& model = shipped_model();
  const int V = model.config.vocab_size;
  const size_t Vs = static_cast<size_t>(V);
  const LogitTolerance tol = logit_tolerance(model, kv_type);
  const auto prompts = lab_prompts();
  REQUIRE(prompts.size() == 50);
  const auto start = std::chrono::steady_clock::now();

  Engine ours(model);
  LlamaCpp llama(shipped_gguf(), {.kv_type = kv_type, .flash_attn = flash_attn});
  Diff full, cached;
  double logit_scale = 0.0;
  int agree = 0, near_ties = 0, clear_margin = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::vector<int>& prompt = prompts[p];
    GenerateOptions o;
    o.max_new_tokens = kNewTokens;
    o.return_logits = true;
    const GenerateResult g = generate(ours, {prompt}, o);
    const std::vector<int>& gen = g.tokens[0];
    const std::vector<float>& step_logits = g.logits[0];  // (64, V), cached path

    // Full recompute of prompt + 63 generated tokens, every row.
    std::vector<int> seq = prompt;
    seq.insert(seq.end(), gen.begin(), gen.end() - 1);
    const std::vector<float> a = ours.forward_uncached(seq, true);
    const std::vector<float> b = llama.forward_uncached(seq, true);
    full.add(a, b);
    for (float z : a) logit_scale = std::max(logit_scale, static_cast<double>(std::fabs(z)));

    // llama.cpp's cached path fed our tokens, against our cached logits of each step.
    llama.reset();
    cached.add(std::span(step_logits).first(Vs), llama.forward_cached(0, prompt));
    for (int s = 1; s < kNewTokens; ++s)
      cached.add(std::span(step_logits).subspan(s * Vs, Vs),
                 llama.forward_cached(0, std::span(gen).subspan(static_cast<size_t>(s - 1), 1)));

    // llama.cpp's own greedy run.
    llama.reset();
    std::vector<int> theirs;
    std::vector<float> row = llama.forward_cached(0, prompt);
    for (int s = 0; s < kNewTokens; ++s) {
      theirs.push_back(argmax(row));
      if (s + 1 < kNewTokens) row = llama.forward_cached(0, std::span(theirs).last(1));
    }
    const auto mismatch = std::mismatch(gen.begin(), gen.end(), theirs.begin());
    if (mismatch.first == gen.end()) {
      ++agree;
    } else {
      const size_t s = static_cast<size_t>(mismatch.first - gen.begin());
      const double gap = top2_gap(std::span(step_logits).subspan(s * Vs, Vs));
      std::printf("  prompt %2zu: greedy diverges at step %zu (ours %d, llama.cpp %d); our top-2 gap %.3g\n",
                  p, s, *mismatch.first, *mismatch.second, gap);
      INFO("prompt " << p << " step " << s << ": a divergence at a top-2 gap above 2 tol is not a near tie");
      if (!flash_attn) CHECK(gap <= 2 * tol.tol);
      ++(gap <= 2 * tol.tol ? near_ties : clear_margin);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "conformance, llama.cpp KV cache %s, flash attention %s, 50 lab prompts x 64 greedy tokens (%.1f s):\n"
      "  tolerance %.3g = %d roundings/layer x %d layers x 2^-11 x ||h|| bound %.3g x max ||e_v|| %.3g\n"
      "  full recompute, %zu logits: max |d| %.3g (%.2g of tol), mean |d| %.3g; largest |logit| %.3g\n"
      "  cached path,    %zu logits: max |d| %.3g (%.2g of tol), mean |d| %.3g\n"
      "  greedy tokens: %d of 50 prompts agree over all 64 steps; %d diverge at a near tie (top-2 gap <= 2 "
      "tol), "
      "%d at a clear margin\n",
      to_string(kv_type), flash_attn ? "on" : "off", secs, tol.tol, tol.roundings_per_layer,
      model.config.n_layer, tol.h_norm_bound, tol.max_emb_norm, full.n, full.max, full.max / tol.tol,
      full.sum / static_cast<double>(full.n), logit_scale, cached.n, cached.max, cached.max / tol.tol,
      cached.sum / static_cast<double>(cached.n), agree, near_ties, clear_margin);
  if (flash_attn) {
    std::printf("  (flash attention: measured, not checked; see the test case)\n");
    return;
  }
  CHECK(full.max <= tol.tol);
  CHECK(cached.max <= tol.tol);
}

TEST_CASE(
    "llama.cpp (F16 KV cache) agrees with our engine on the lab's 50 prompts within the derived tolerance",
    "[llamacpp][conformance]") {
  conformance(KvType::F16);
}

TEST_CASE(
    "llama.cpp (F32 KV cache) agrees with our engine on the lab's 50 prompts within the derived tolerance",
    "[llamacpp][conformance]") {
  conformance(KvType::F32);
}

}  // namespace
}  // namespace miniinfer

namespace miniinfer {
namespace {

// With flash attention, ggml's CPU kernel (F16 V) accumulates the softmax-weighted sum of V in
// an F16 accumulator, rounding at each of the T keys: T more roundings per layer, so the same
// derivation gives (5 + T) * L * u * ... = 11 at T = 95, which bounds nothing at logits of 20.
// So this run is a measurement, printed, not a check.
TEST_CASE("llama.cpp with flash attention, measured against our engine on the lab's 50 prompts",
          "[llamacpp][conformance]") {
  conformance(KvType::F16, true);
}

}  // namespace
}  // namespace miniinfer
