// A bench tool's numeric flag values, read strictly: std::atoi and std::stod would take "abc"
// as 0 or "5x" as 5 unannounced. A value that is not one is refused with one line naming the
// flag (base/error.h's Error; the tools exit kExitRefused).
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

#include "base/error.h"

namespace miniinfer::bench {

// A number above 0 and at most 1e9 (a whole one when `whole`).
inline double number_above_zero(const std::string& flag, const std::string& v, bool whole) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || !(x > 0) || !std::isfinite(x) || x > 1e9 || (whole && x != std::floor(x)))
    fail("{}: '{}' is not a {} above 0", flag, v, whole ? "whole number" : "number of seconds");
  return x;
}

inline int whole_above_zero(const std::string& flag, const std::string& v) {
  return static_cast<int>(number_above_zero(flag, v, true));
}

}  // namespace miniinfer::bench
