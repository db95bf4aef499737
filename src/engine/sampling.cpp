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

int sample(std::span<const float> logits, const SamplerOptions& o, float coin, SamplerScratch& scratch) {
  const int V = static_cast<int>(logits.size());
  if (V == 0) fail("sampling: no logits");
  for (int i = 0; i < V; ++i)
    if (!std::isfinite(logits[static_cast<size_t>(i)]))
      fail("sampling: the logit of token {} is {}", i, logits[static_cast<size_t>(i)]);
  if (o.temperature == 0.0f) {
    int best = 0;
    for (int i = 1; i < V; ++i)
      if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) best = i;
    return best;
  }
  auto z = [&](int i) { return logits[static_cast<size_t>(i)] / o.temperature; };

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

  float m = z(kept[0]);
  for (int i : kept) m = std::max(m, z(i));
  if (!std::isfinite(m)) fail("sampling: a logit divided by the temperature {} overflows", o.temperature);
  float total = 0.0f;
  for (int i : kept) total += exp_f(z(i) - m);
  const float target = coin * total;
  float running = 0.0f;
  for (int i : kept) {
    running += exp_f(z(i) - m);
    if (running > target) return i;
  }
  return kept.back();
}

}  // namespace miniinfer
