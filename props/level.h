// Equality levels: how equal the cached path and full recompute must be for a case to pass.
//   bits    (default) logits and K/V rows byte for byte;
//   ulp:N   every logit (and K/V value) within N units in the last place, tokens equal;
//   tokens  the same token ids.
// Every comparison measures all three at once (Closeness), so a report always says at which
// finer level a case parted, even when the run's level lets it pass: "tokens equal; logits
// differ by at most 3 ULP from step 1".
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace miniinfer::props {

struct Level {
  enum Kind { Bits, Ulp, Tokens } kind = Bits;
  uint64_t ulp = 0;  // Ulp: the N of ulp:N
  // The largest ULP distance a value may have at this level (Tokens: any).
  uint64_t allowed_ulp() const { return kind == Bits ? 0 : kind == Ulp ? ulp : UINT64_MAX; }
};
Level level_from_name(std::string_view name);  // throws Error naming the accepted forms
std::string to_string(const Level& level);

// Two runs of the same draws, compared at every level. Logits are compared while the tokens
// agree (up to and including the step where they part: after it the contexts differ).
struct Closeness {
  int steps = 0;
  int token_step = -1;     // the first step whose token differs; -1: tokens equal
  int bits_step = -1;      // the first step whose logits differ in any bit; -1: bit-identical
  uint64_t max_ulp = 0;    // over the compared steps
  int max_ulp_step = -1;
  double max_abs = 0.0;    // the largest |a - b| of a logit over the compared steps
  bool tokens_equal() const { return token_step < 0; }
  bool bit_identical() const { return token_step < 0 && bits_step < 0; }
  bool holds(const Level& level) const;
  // "bit-identical"; "tokens equal; logits differ by at most 3 ULP from step 1"; "tokens
  // differ from step 7 (logits differ by at most 812 ULP from step 0)".
  std::string describe() const;
};

// Runs a and b: their drawn tokens and their logits, (steps, V) each.
Closeness compare_runs(const std::vector<int>& tokens_a, const std::vector<int>& tokens_b,
                       const std::vector<float>& logits_a, const std::vector<float>& logits_b, int V);
// Logits alone (no tokens drawn from them): rows of V.
Closeness compare_logits(const std::vector<float>& a, const std::vector<float>& b, int V);

// The run's level (--level), and what each property's cases showed at the finer levels.
const Level& run_level();
void set_run_level(const Level& level);

// Records `c` for the property being checked and returns the failure message when it does
// not hold at the run's level: "WHAT: logits differ first at step 3 (token id 5); tokens
// equal; logits differ by at most 3 ULP from step 3".
std::optional<std::string> judge(const std::string& what, const Closeness& c, int V = 0,
                                 const std::vector<float>* a = nullptr, const std::vector<float>* b = nullptr);

// Per property: cases observed, how many were bit-identical, the worst, for the summary line.
void begin_observing(const std::string& property);
std::string observed_summary();  // "" when nothing was compared
struct Observed {
  int cases = 0, bit_identical = 0, tokens_equal = 0;
  uint64_t max_ulp = 0;
  std::string worst;  // the describe() of the case with the most ULP
};
const Observed& observed();

}  // namespace miniinfer::props
