#include "props/json_fields.h"

#include <cmath>
#include <limits>

#include "base/error.h"

namespace miniinfer::props {
namespace {

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

}  // namespace

int json_int(const nlohmann::json& v, const std::string& what) {
  constexpr int64_t lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
  const bool fits = (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(hi)) ||
                    (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi);
  if (!fits) fail("case: {}: {} is not an integer in {}..{}", what, shown(v), lo, hi);
  return static_cast<int>(v.get<int64_t>());
}

uint64_t json_u64(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  fail("case: {}: {} is not an integer in 0..{}", what, shown(v), std::numeric_limits<uint64_t>::max());
}

float json_float(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number()) fail("case: {}: {} is not a number", what, shown(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    fail("case: {}: {} is not a finite float", what, shown(v));
  return static_cast<float>(d);
}

std::vector<int> json_ints(const nlohmann::json& v, const std::string& what) {
  if (!v.is_array()) fail("case: {}: {} is not an array of integers", what, shown(v));
  std::vector<int> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) out.push_back(json_int(v[i], what + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace miniinfer::props
