#include "props/level.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "base/error.h"
#include "model/safetensors.h"
#include "props/report.h"

namespace miniinfer::props {

Level level_from_name(std::string_view name) {
  if (name == "bits") return {Level::Bits, 0};
  if (name == "tokens") return {Level::Tokens, 0};
  if (name.starts_with("ulp:")) {
    const std::string_view n = name.substr(4);
    if (!n.empty() && n.size() <= 9 && n.find_first_not_of("0123456789") == std::string_view::npos)
      return {Level::Ulp, std::stoull(std::string(n))};
  }
  fail("--level: '{}' is not a level (bits, ulp:N with N a number of ULP, or tokens)", printable_name(name));
}

std::string to_string(const Level& level) {
  switch (level.kind) {
    case Level::Bits: return "bits";
    case Level::Ulp: return fmt::format("ulp:{}", level.ulp);
    case Level::Tokens: return "tokens";
  }
  return "?";
}

bool Closeness::holds(const Level& level) const {
  switch (level.kind) {
    case Level::Bits: return bit_identical();
    case Level::Ulp: return tokens_equal() && max_ulp <= level.ulp;
    case Level::Tokens: return tokens_equal();
  }
  return false;
}

std::string Closeness::describe() const {
  if (bit_identical()) return "bit-identical";
  const std::string logits = bits_step < 0 ? "logits bit-identical"
                             : max_ulp == 0
                                 ? fmt::format("logits differ only in the sign of a zero from step {}", bits_step)
                                 : fmt::format("logits differ by at most {} ULP (max |d| {:.3g}) from step {}",
                                               max_ulp, max_abs, bits_step);
  if (tokens_equal()) return "tokens equal; " + logits;
  return fmt::format("tokens differ from step {} ({})", token_step, logits);
}

namespace {

void compare_rows(Closeness& c, const std::vector<float>& a, const std::vector<float>& b, int V, int rows) {
  const size_t n = static_cast<size_t>(V);
  for (int s = 0; s < rows; ++s) {
    const float* x = a.data() + static_cast<size_t>(s) * n;
    const float* y = b.data() + static_cast<size_t>(s) * n;
    if (std::memcmp(x, y, n * sizeof(float)) == 0) continue;
    if (c.bits_step < 0) c.bits_step = s;
    for (size_t i = 0; i < n; ++i) {
      if (const uint64_t u = ulp_distance(x[i], y[i]); u > c.max_ulp) {
        c.max_ulp = u;
        c.max_ulp_step = s;
      }
      c.max_abs = std::max(c.max_abs, std::fabs(static_cast<double>(x[i]) - static_cast<double>(y[i])));
    }
  }
}

}  // namespace

Closeness compare_runs(const std::vector<int>& ta, const std::vector<int>& tb, const std::vector<float>& la,
                       const std::vector<float>& lb, int V) {
  Closeness c;
  c.steps = static_cast<int>(std::max(ta.size(), tb.size()));
  size_t i = 0;
  while (i < ta.size() && i < tb.size() && ta[i] == tb[i]) ++i;
  if (i < ta.size() || i < tb.size()) c.token_step = static_cast<int>(i);
  // Logits rows up to and including the parting step, as far as both runs have them.
  const size_t n = static_cast<size_t>(std::max(V, 1));
  int rows = static_cast<int>(std::min(la.size(), lb.size()) / n);
  if (c.token_step >= 0) rows = std::min(rows, c.token_step + 1);
  compare_rows(c, la, lb, V, rows);
  if (la.size() != lb.size() && c.token_step < 0 && c.bits_step < 0) c.bits_step = rows;
  return c;
}

Closeness compare_logits(const std::vector<float>& a, const std::vector<float>& b, int V) {
  return compare_runs({}, {}, a, b, V);
}

namespace {
Level& level_storage() {
  static Level level;
  return level;
}
Observed& observed_storage() {
  static Observed o;
  return o;
}
}  // namespace

const Level& run_level() { return level_storage(); }
void set_run_level(const Level& level) { level_storage() = level; }
const Observed& observed() { return observed_storage(); }

void begin_observing(const std::string&) { observed_storage() = Observed{}; }

std::optional<std::string> judge(const std::string& what, const Closeness& c, int V, const std::vector<float>* a,
                                 const std::vector<float>* b) {
  Observed& o = observed_storage();
  ++o.cases;
  o.bit_identical += c.bit_identical();
  o.tokens_equal += c.tokens_equal();
  if (o.worst.empty() || c.max_ulp > o.max_ulp || (!c.tokens_equal() && o.tokens_equal == o.cases - 1)) {
    if (!c.bit_identical()) o.worst = c.describe();
  }
  o.max_ulp = std::max(o.max_ulp, c.max_ulp);
  if (c.holds(run_level())) return std::nullopt;
  std::string head;
  if (!c.tokens_equal()) {
    head = fmt::format("{}: tokens differ first at step {}", what, c.token_step);
  } else if (a && b && V > 0 && c.bits_step >= 0) {
    const size_t n = static_cast<size_t>(V);
    size_t i = static_cast<size_t>(c.bits_step) * n;
    while (i < a->size() && i < b->size() && std::memcmp(&(*a)[i], &(*b)[i], sizeof(float)) == 0) ++i;
    head = fmt::format("{}: logits differ first at step {} (token id {})", what, i / n, i % n);
  } else {
    head = fmt::format("{}: logits differ first at step {}", what, c.bits_step);
  }
  return head + "; " + c.describe();
}

std::string observed_summary() {
  const Observed& o = observed_storage();
  if (o.cases == 0) return "";
  const std::string level = to_string(run_level());
  if (o.bit_identical == o.cases) return fmt::format("level {}: {} comparisons, all bit-identical", level, o.cases);
  return fmt::format("level {}: of {} comparisons {} bit-identical, {} with equal tokens; worst: {}", level, o.cases,
                     o.bit_identical, o.tokens_equal, o.worst);
}

}  // namespace miniinfer::props
