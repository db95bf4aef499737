// Central finite differences, for tests that check a backward pass against its forward.
// The error measure is the one the tests state: per tensor, the largest difference between
// analytic and numeric gradient, relative to the tensor's largest numeric gradient.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <span>

namespace miniinfer::train {

struct GradCheck {
  double max_abs_error = 0;  // max_i |analytic_i - numeric_i|
  double max_numeric = 0;    // max_i |numeric_i|, the tensor's gradient scale
  double relative_error() const { return max_numeric > 0 ? max_abs_error / max_numeric : max_abs_error; }
};

// Perturbs each x_i by +-h and +-2h, calls loss(), restores x_i, and compares the five-point
// central difference (8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h with analytic[i]. Its error
// is h^4 f^(5) / 30 rather than the three-point h^2 f''' / 6, which matters where LayerNorm of
// a few channels curves sharply. loss() must read x through the same memory.
inline GradCheck check_gradient(std::span<double> x, std::span<const double> analytic,
                                const std::function<double()>& loss, double h) {
  GradCheck result;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    auto at = [&](double offset) {
      x[i] = saved + offset;
      return loss();
    };
    const double near = at(h) - at(-h), far = at(2 * h) - at(-2 * h);
    x[i] = saved;
    const double numeric = (8 * near - far) / (12 * h);
    result.max_abs_error = std::max(result.max_abs_error, std::abs(analytic[i] - numeric));
    result.max_numeric = std::max(result.max_numeric, std::abs(numeric));
  }
  return result;
}

}  // namespace miniinfer::train
