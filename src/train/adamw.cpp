// AdamW, the learning-rate schedule and gradient clipping. Sums and updates run in double and
// in a fixed order, so a run's bytes depend only on its inputs.
#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace miniinfer::train {

double LrSchedule::at(int step) const {
  if (step < warmup) return max_lr * (step + 1) / warmup;
  const int span = total - 1 - warmup;
  if (span <= 0) return max_lr;
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

double clip_grad_norm(Params<float>& grads, const Config& config, double max_norm) {
  auto tensors = tensors_of(grads, config);
  double sum = 0;
  for (const auto& t : tensors)
    for (float g : t.data) sum += static_cast<double>(g) * g;
  const double norm = std::sqrt(sum);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / norm);
    for (auto& t : tensors)
      for (float& g : t.data) g *= scale;
  }
  return norm;
}

bool decays(const std::string& name, const std::vector<int64_t>& shape) {
  return shape.size() == 2 && name != "tok_emb.weight";
}

AdamW::AdamW(const Config& config, AdamWOptions options)
    : config_(config), options_(options), m_(zero_params<float>(config)), v_(zero_params<float>(config)) {}

void AdamW::update(Params<float>& params, Params<float>& grads, double lr) {
  ++t_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double correction1 = 1.0 - std::pow(b1, t_), correction2 = 1.0 - std::pow(b2, t_);
  auto p = tensors_of(params, config_);
  auto g = tensors_of(grads, config_);
  auto m = tensors_of(m_, config_);
  auto v = tensors_of(v_, config_);
  for (size_t i = 0; i < p.size(); ++i) {
    const double wd = decays(p[i].name, p[i].shape) ? options_.weight_decay : 0.0;
    for (size_t j = 0; j < p[i].data.size(); ++j) {
      const double grad = g[i].data[j];
      const double mj = b1 * m[i].data[j] + (1 - b1) * grad;
      const double vj = b2 * v[i].data[j] + (1 - b2) * grad * grad;
      m[i].data[j] = static_cast<float>(mj);
      v[i].data[j] = static_cast<float>(vj);
      const double step = (mj / correction1) / (std::sqrt(vj / correction2) + options_.eps);
      const double x = p[i].data[j];
      p[i].data[j] = static_cast<float>(x - lr * (step + wd * x));
    }
  }
}

}  // namespace miniinfer::train
