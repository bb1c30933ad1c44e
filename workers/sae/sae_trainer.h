// SaeTrainer: trains an SAE of any architecture (sae_model.h), one step at a
// time, with the recipes of the literature (../shared reference notes:
// docs/jobs/sae.train.md lists the sources):
//
//   relu      loss = FVU + l1 * sum_i z_i ||W_dec[i]|| / rms(x)
//             (Anthropic's April-2024 update: L1 weighted by decoder norms;
//             divided by the batch's RMS centred norm so the coefficient does
//             not depend on the activations' scale), l1 warmed up linearly
//             over l1_warmup_steps.
//   topk      loss = FVU + auxk * AuxK (Gao et al. 2024); the decoder reads
//             only the k active rows per sample (gather), forward and backward.
//   batchtopk the top k × batch activations of the whole batch (Bussmann et
//             al. 2024) + AuxK; the inference threshold is an exponential
//             moving average of the smallest activation kept per batch.
//   jumprelu  loss = FVU + l0_coefficient * (L0 / target_l0 - 1)^2 with the
//             straight-through estimators of jumprelu.h; the threshold is
//             learned as log-threshold.
// Shared: FVU = sum ||x - x^||^2 / sum ||x - mean(x)||^2 (scale-free MSE);
// decoder rows kept at unit norm, with each row's gradient component along
// the row removed before the step; b_dec from the geometric median of a
// first sample (InitDecoderBias); Adam (0.9, 0.999); learning rate warmed up
// linearly over warmup_steps and decayed linearly over the last
// decay_fraction of the steps; global gradient-norm clipping.
// AuxK (topk, batchtopk): the top k_aux = min(d_in/2, #dead) dead latents
// reconstruct the residual x - x^ (detached), scaled by min(#dead/(d_in/2), 1).
//
// Owns its parameters (on `device`); not thread-safe (one caller).
#ifndef LOUPE_WORKERS_SAE_SAE_TRAINER_H_
#define LOUPE_WORKERS_SAE_SAE_TRAINER_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "workers/sae/sae_metrics.h"
#include "workers/sae/sae_model.h"

namespace loupe::sae {

struct SaeTrainerOptions {
  SaeArchitecture architecture = SaeArchitecture::kTopK;
  int64_t d_in = 64;
  int64_t d_sae = 1024;
  int64_t k = 32;  // topk, batchtopk
  double lr = 3e-3;
  int64_t warmup_steps = 100;
  int64_t total_steps = 1000;
  double decay_fraction = 0.2;
  double grad_clip_norm = 1.0;  // 0: off
  double auxk_coefficient = 1.0 / 32;
  int64_t dead_window_tokens = 32768;
  double l1_coefficient = 0.3;     // relu
  int64_t l1_warmup_steps = 0;     // relu
  double target_l0 = 32;           // jumprelu
  double l0_coefficient = 100.0;   // jumprelu
  double bandwidth = 0.05;         // jumprelu
  double init_threshold = 0.1;     // jumprelu
  double threshold_momentum = 0.99;  // batchtopk's moving average
};

struct TrainStepStats {
  int64_t step = 0;  // 1-based
  double loss = 0;
  double fvu = 0;    // of this batch, before the step
  double l0 = 0;
  double auxk = 0;           // topk/batchtopk; 0 when nothing is dead
  double sparsity_loss = 0;  // relu's weighted L1 or jumprelu's L0 penalty
  double dead_fraction = 0;  // over the tracker's window, after this batch
  double lr = 0;
  double grad_norm = 0;      // before clipping
};

class SaeTrainer {
 public:
  SaeTrainer(const SaeTrainerOptions& options, torch::Device device, at::Generator& init_gen);

  // b_dec := geometric median of `x` ([n, d_in]).
  void InitDecoderBias(const torch::Tensor& x);
  TrainStepStats Step(const torch::Tensor& x);
  double LearningRate(int64_t step) const;

  // A detached snapshot for inference/saving (batchtopk's threshold filled in).
  SaeModel Model() const;
  const DeadLatentTracker& dead_tracker() const { return dead_; }
  int64_t steps_done() const { return step_; }
  const SaeTrainerOptions& options() const { return options_; }
  const torch::Tensor& W_dec() const { return W_dec_; }

  // Everything a resumed run needs: parameters, Adam's moments and step
  // counts, the dead-latent counters, the batchtopk threshold and the step.
  std::map<std::string, torch::Tensor> State() const;
  // Restores State(); INVALID_ARGUMENT if a tensor is missing or misshapen.
  absl::Status LoadState(const std::map<std::string, torch::Tensor>& state);

 private:
  torch::Tensor AuxK(const torch::Tensor& x, const torch::Tensor& x_hat, const torch::Tensor& pre,
                     const torch::Tensor& dead, int64_t n_dead);
  std::vector<torch::Tensor> Parameters() const;

  SaeTrainerOptions options_;
  torch::Tensor W_enc_, b_enc_, W_dec_, b_dec_, log_threshold_;
  torch::Tensor batch_threshold_;  // [] float, batchtopk; negative until first step
  std::unique_ptr<torch::optim::Adam> adam_;
  DeadLatentTracker dead_;
  int64_t step_ = 0;
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_TRAINER_H_
