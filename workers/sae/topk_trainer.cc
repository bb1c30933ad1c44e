#include "workers/sae/topk_trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "workers/sae/lr_schedule.h"

namespace loupe::sae {
namespace {

// sum ||target - estimate||^2 / sum ||target - mean(target)||^2; the floor
// keeps a constant batch (zero variance) from dividing by zero.
torch::Tensor NormalisedError(const torch::Tensor& target, const torch::Tensor& estimate) {
  torch::Tensor variance = (target - target.mean(0, true)).pow(2).sum().detach();
  return (target - estimate).pow(2).sum() / variance.clamp_min(1e-12);
}

}  // namespace

TopKTrainer::TopKTrainer(TopKSae* sae, const TrainerOptions& options)
    : sae_(sae),
      options_(options),
      dead_(sae->d_sae(), options.dead_window_tokens, sae->W_dec().device()) {
  adam_ = std::make_unique<torch::optim::Adam>(
      sae_->parameters(),
      torch::optim::AdamOptions(options_.lr).betas({0.9, 0.999}).eps(6.25e-10));
}

double TopKTrainer::LearningRate(int64_t step) const {
  return WarmupDecayLearningRate(options_.lr, options_.warmup_steps, options_.decay_fraction, options_.total_steps,
                                 step);
}

StepStats TopKTrainer::Step(const torch::Tensor& x) {
  ++step_;
  StepStats stats;
  stats.step = step_;
  stats.lr = LearningRate(step_);
  for (auto& group : adam_->param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(stats.lr);
  }

  TopKCode code = sae_->Encode(x);
  torch::Tensor x_hat = sae_->Decode(code.values, code.indices);
  torch::Tensor fvu = NormalisedError(x, x_hat);
  torch::Tensor loss = fvu;

  dead_.Update(code.indices, code.values);
  torch::Tensor dead = dead_.DeadMask();
  const int64_t n_dead = dead.sum().item<int64_t>();
  if (n_dead > 0 && options_.auxk_coefficient > 0) {
    const int64_t half = std::max<int64_t>(1, sae_->d_in() / 2);
    const int64_t k_aux = std::min(half, n_dead);
    const double scale = std::min(1.0, static_cast<double>(n_dead) / static_cast<double>(half));
    torch::Tensor masked = code.pre.masked_fill(dead.logical_not().unsqueeze(0),
                                                -std::numeric_limits<float>::infinity());
    auto [aux_pre, aux_idx] = masked.topk(k_aux, 1, true, false);
    torch::Tensor residual = (x - x_hat).detach();
    torch::Tensor residual_hat = sae_->DecodeWithoutBias(torch::relu(aux_pre), aux_idx);
    torch::Tensor auxk = NormalisedError(residual, residual_hat);
    loss = loss + options_.auxk_coefficient * scale * auxk;
    stats.auxk = auxk.item<double>();
  }

  adam_->zero_grad();
  loss.backward();
  sae_->RemoveParallelDecoderGrad();
  adam_->step();
  sae_->NormalizeDecoder();

  stats.fvu = fvu.item<double>();
  stats.l0 = MeanL0(code.values);
  stats.dead_fraction = static_cast<double>(n_dead) / static_cast<double>(sae_->d_sae());
  return stats;
}

}  // namespace loupe::sae
