// Sampling: a pure function of the logits, the options and one uniform coin in [0, 1)
// (llama2.c's sample_mult(probs, n, coin)), so it is deterministic and testable without an RNG.
//
// Exact order of operations, all in float:
//   1. temperature == 0: argmax, ties to the lowest id; the coin is ignored.
//   2. z_i = logits_i / temperature.
//   3. Candidates are all ids. If top_k > 0 and < V, or top_p < 1, candidates are ranked by
//      (z descending, id ascending) and: top_k keeps the first k; then with m = z of the first,
//      e_i = exp(z_i - m) (our exp_f), S = sum of e_i in rank order, top_p keeps the shortest
//      prefix whose running sum of e_i / S reaches top_p (at least one id).
//   4. m = max z over the candidates, e_i = exp_f(z_i - m), total = sum of e_i over the
//      candidates in increasing id order; target = coin * total; the draw is the first
//      candidate, in increasing id order, whose running sum exceeds target (the last
//      candidate if rounding leaves none).
#pragma once
#include <span>
#include <utility>
#include <vector>

namespace miniinfer {

// The smallest temperature other than 0. Below it, logits / T overflow float for logits
// past ~3e35 (inf - inf is NaN), and the draw is greedy in all but name anyway; validate()
// refuses such temperatures rather than quietly treating them as 0.
constexpr float kMinTemperature = 1e-3f;

struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy; otherwise >= kMinTemperature
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off; otherwise in (0, 1]
};

// Throws Error naming the bad option (negative temperature or one below kMinTemperature,
// top_p outside (0, 1], ...).
void validate(const SamplerOptions& options);

// Reusable workspace so that sampling in a decode loop allocates nothing after the first call.
struct SamplerScratch {
  std::vector<std::pair<float, int>> ranked;  // (z, id), up to V
  std::vector<int> kept;                      // candidate ids, up to V
};

// Throws Error if a logit is NaN or infinite (naming its token id), or if logits / temperature
// overflows: no draw is made from logits that are not numbers.
int sample(std::span<const float> logits, const SamplerOptions& options, float coin);
int sample(std::span<const float> logits, const SamplerOptions& options, float coin, SamplerScratch& scratch);

// The distribution sample() draws from, per token id (V floats): e_i / total for step 4's
// candidates, with its e_i and total, and 0 for the others; greedy: 1 at the argmax (ties to the
// lowest id), 0 elsewhere. Speculative decoding's acceptance test and residual use it.
void probabilities(std::span<const float> logits, const SamplerOptions& options, std::span<float> out,
                   SamplerScratch& scratch);

// Where the draw is fragile: the coins at which sample() moves from one candidate to the next
// (running sum / total after each candidate but the last, in step 4's order); empty when
// greedy. A coin a few ULP to either side of an edge draws a different token, so any other
// rounding on the way from logits to a token (a multiply by 1/T instead of a divide, another
// summation order) flips the draw there.
std::vector<float> sample_edges(std::span<const float> logits, const SamplerOptions& options);

}  // namespace miniinfer
