// The sampler; the order of operations is specified in sampling.h and followed line by line.
#include "engine/sampling.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "engine/kernels.h"

namespace miniinfer {

using kernels::exp_f;

void validate(const SamplerOptions& o) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    fail("sampling: temperature must be a finite number >= 0, got {}", o.temperature);
  if (o.temperature > 0.0f && o.temperature < kMinTemperature)
    fail("sampling: temperature {} is below the floor {} (use 0 for greedy decoding)", o.temperature, kMinTemperature);
  if (o.top_k < 0) fail("sampling: top-k must be >= 0 (0 = off), got {}", o.top_k);
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) fail("sampling: top-p must lie in (0, 1], got {}", o.top_p);
}

int sample(std::span<const float> logits, const SamplerOptions& options, float coin) {
  SamplerScratch scratch;
  return sample(logits, options, coin, scratch);
}

namespace {

// Step 2: z_i = logits_i / temperature (a divide, never a multiply by 1/T: the two round apart).
float z_of(std::span<const float> logits, int i, float temperature) { return logits[static_cast<size_t>(i)] / temperature; }

// Step 3: the candidates, in increasing id order, into scratch.kept.
void keep_candidates(std::span<const float> logits, const SamplerOptions& o, SamplerScratch& scratch) {
  const int V = static_cast<int>(logits.size());
  auto z = [&](int i) { return z_of(logits, i, o.temperature); };
  std::vector<int>& kept = scratch.kept;
  kept.clear();
  const bool top_k = o.top_k > 0 && o.top_k < V;
  const bool top_p = o.top_p < 1.0f;
  if (top_k || top_p) {
    auto& ranked = scratch.ranked;
    ranked.clear();
    for (int i = 0; i < V; ++i) ranked.emplace_back(z(i), i);
    // (z descending, id ascending) is a strict total order, so the ranking is unique.
    const auto before = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    const size_t n = top_k ? static_cast<size_t>(o.top_k) : ranked.size();
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n), ranked.end(), before);
    size_t keep = n;
    if (top_p) {
      const float m = ranked[0].first;
      float total = 0.0f;
      for (size_t i = 0; i < n; ++i) total += exp_f(ranked[i].first - m);
      float running = 0.0f;
      for (keep = 0; keep < n;) {
        running += exp_f(ranked[keep].first - m);
        ++keep;
        if (running / total >= o.top_p) break;
      }
    }
    for (size_t i = 0; i < keep; ++i) kept.push_back(ranked[i].second);
    std::sort(kept.begin(), kept.end());
  } else {
    for (int i = 0; i < V; ++i) kept.push_back(i);
  }
}

// Step 4 up to the draw: m over the candidates and the total of e_i = exp_f(z_i - m).
float max_z(std::span<const float> logits, const SamplerOptions& o, const std::vector<int>& kept) {
  float m = z_of(logits, kept[0], o.temperature);
  for (int i : kept) m = std::max(m, z_of(logits, i, o.temperature));
  if (!std::isfinite(m)) fail("sampling: a logit divided by the temperature {} overflows", o.temperature);
  return m;
}

// Step 4's total: the sum of e_i = exp_f(z_i - m) over the candidates, in increasing id order.
// sample() and sample_edges() both use it, so the edges are the draw's own cumulative sums.
float total_e(std::span<const float> logits, const SamplerOptions& o, const std::vector<int>& kept, float m) {
  float total = 0.0f;
  for (int i : kept) total += exp_f(z_of(logits, i, o.temperature) - m);
  return total;
}

void check_logits(std::span<const float> logits) {
  if (logits.empty()) fail("sampling: no logits");
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i])) fail("sampling: the logit of token {} is {}", i, logits[i]);
}

}  // namespace

int sample(std::span<const float> logits, const SamplerOptions& o, float coin, SamplerScratch& scratch) {
  const int V = static_cast<int>(logits.size());
  check_logits(logits);
  if (o.temperature == 0.0f) {
    int best = 0;
    for (int i = 1; i < V; ++i)
      if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) best = i;
    return best;
  }
  keep_candidates(logits, o, scratch);
  const std::vector<int>& kept = scratch.kept;
  const float m = max_z(logits, o, kept);
  const float target = coin * total_e(logits, o, kept, m);
  float running = 0.0f;
  for (int i : kept) {
    running += exp_f(z_of(logits, i, o.temperature) - m);
    if (running > target) return i;
  }
  return kept.back();
}

void probabilities(std::span<const float> logits, const SamplerOptions& o, std::span<float> out,
                   SamplerScratch& scratch) {
  std::fill(out.begin(), out.end(), 0.0f);
  if (o.temperature == 0.0f) {
    out[static_cast<size_t>(sample(logits, o, 0.0f, scratch))] = 1.0f;
    return;
  }
  check_logits(logits);
  keep_candidates(logits, o, scratch);
  const std::vector<int>& kept = scratch.kept;
  const float m = max_z(logits, o, kept);
  const float total = total_e(logits, o, kept, m);
  for (int i : kept) out[static_cast<size_t>(i)] = exp_f(z_of(logits, i, o.temperature) - m) / total;
}

std::vector<float> sample_edges(std::span<const float> logits, const SamplerOptions& o) {
  check_logits(logits);
  if (o.temperature == 0.0f) return {};
  SamplerScratch scratch;
  keep_candidates(logits, o, scratch);
  const std::vector<int>& kept = scratch.kept;
  const float m = max_z(logits, o, kept);
  const float total = total_e(logits, o, kept, m);
  std::vector<float> edges;
  float running = 0.0f;
  for (size_t j = 0; j + 1 < kept.size(); ++j) {
    running += exp_f(z_of(logits, kept[j], o.temperature) - m);
    edges.push_back(running / total);
  }
  return edges;
}

}  // namespace miniinfer
