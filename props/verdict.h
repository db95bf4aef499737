// One vocabulary of verdicts: what a measured difference between the cached path and full
// recompute is, decided here and nowhere else (docs/verdicts.md has the thresholds and why).
//   bit-identical   no bit differs;
//   ulp-drift       float32 reordering: |d| within kDriftRelative of the compared values' scale;
//   dtype-rounding  within the rounding of a storage dtype the engine declares for what the
//                   compared value is read from (an F16 K/V cache: one F16 ULP of the scale);
//   gross           a wrong value.
// Every report path (report.cpp, report_outside.cpp, history.cpp, the properties' own reports)
// classifies with classify() and prints verdict_text(); report_contradictions() checks that a
// report's lines agree with each other and with its JSON.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace miniinfer::props {

enum class Verdict { BitIdentical, UlpDrift, DtypeRounding, Gross };

// At or below this fraction of the compared values' scale, a difference is float32 rounding
// drift (a few ULPs of the largest element; ULPs alone mislead: an element near zero is
// thousands of ULPs off after one rounding).
constexpr double kDriftRelative = 1e-4;

// What was measured at one site: the largest ULP distance (UINT64_MAX: the shapes differ), the
// largest |a - b|, the largest |reference value| (the scale) and how many elements differ.
struct Measured {
  uint64_t max_ulp = 0;
  double max_abs = 0.0;
  double scale = 0.0;
  int differing = 0;
};

// `a` against the reference `b`, element by element (a size difference: max_ulp UINT64_MAX).
Measured measure(std::span<const float> a, std::span<const float> b);

// The relative size of one ULP of a storage dtype at the top of a binade ("f32": 2^-23,
// "f16": 2^-10, "bf16": 2^-7; llama.cpp's block formats "q8_0": 1/127 and "q4_0": 1/8, one step
// of a block's scale relative to its largest magnitude); 0 for a name that is not a dtype.
double dtype_ulp(std::string_view dtype);

// Whether a component reads values the engine stores in its K/V cache dtype: the cache rows
// attention read (k-read, v-read, cache), the scores made from them (probs) and their
// weighted sum (attn). Other components (q, k, v before storage, ln, mlp, block) are float32.
bool reads_kv_storage(std::string_view component);

// The dtype the compared value of `component` was read from, for an engine that stores K/V as
// `kv_dtype` ("f32" by default, engines.h EngineUnderTest::kv_dtype).
std::string value_dtype(std::string_view component, std::string_view kv_dtype);

// The verdict of a measured difference in a value read from `dtype` storage:
//   differing == 0 and max_ulp == 0        -> BitIdentical
//   shapes differ (max_ulp == UINT64_MAX)  -> Gross
//   max_abs <= kDriftRelative * scale      -> UlpDrift
//   dtype coarser than f32 and max_abs <= dtype_ulp(dtype) * scale -> DtypeRounding
//   otherwise                              -> Gross
Verdict classify(const Measured& m, std::string_view dtype = "f32");

// A site with no values to measure (the sampler, a cursor, the pool's bookkeeping, a refused
// call): a wrong outcome, never rounding.
inline Verdict classify_unmeasured() { return Verdict::Gross; }

// The JSON word ("bit-identical", "ulp-drift", "dtype-rounding", "gross"; shared with the
// other report fields) and the text form a report prints after "verdict: ".
const char* verdict_word(Verdict v);
Verdict verdict_from_word(std::string_view word);  // throws Error for a word not in the list
std::string verdict_text(Verdict v, std::string_view dtype = "f32");
// The report line: "  verdict: <text> starting at layer L COMPONENT\n" (layer < 0: "in the WHERE").
std::string verdict_line(Verdict v, std::string_view dtype, int layer, std::string_view where);

// Every contradiction between the lines of one report (`text`, the human report) and its JSON:
// the headline against the levels line and the token lines, each "verdict:" line against the
// others and against j["verdict"], the first parting line against j["first_parting"], and a
// verdict without a first parting. Empty when they agree.
std::vector<std::string> report_contradictions(const std::string& text, const nlohmann::json& j);

}  // namespace miniinfer::props
