#include "workers/lm/jobs/optim.h"

#include <algorithm>
#include <cmath>

namespace loupe::lm {

constexpr double kPi = 3.14159265358979323846;

double ScheduledLr(const LmOptimizerOptions& o, int64_t step) {
  if (step <= o.warmup_steps) {
    return o.lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(o.warmup_steps, 1));
  }
  const int64_t decay_steps = o.total_steps - o.warmup_steps;
  if (decay_steps <= 0) return o.lr;
  const double progress = std::clamp(static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps),
                                     0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(kPi * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

LmOptimizer::LmOptimizer(torch::nn::Module& model, const LmOptimizerOptions& options) : options_(options) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const torch::Tensor& p : model.parameters()) {
    params_.push_back(p);
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  auto group_options = [&](double weight_decay) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(options.lr);
    o->betas({options.beta1, options.beta2}).eps(1e-8).weight_decay(weight_decay);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, group_options(options.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, group_options(0.0));
  adam_ = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(options.lr));
}

double LmOptimizer::Step(int64_t step) {
  lr_ = ScheduledLr(options_, step);
  for (auto& group : adam_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr_);
  double norm = 0;
  if (options_.grad_clip > 0) {
    norm = torch::nn::utils::clip_grad_norm_(params_, options_.grad_clip);
  }
  adam_->step();
  adam_->zero_grad();
  return norm;
}

}  // namespace loupe::lm
