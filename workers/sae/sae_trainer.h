// SaeTrainer: trains an SAE of any architecture (sae_model.h), one step at a
// time, with the recipes of the literature (../shared reference notes:
// docs/jobs/sae.train.md lists the sources):
//
//   relu      loss = FVU + l1 * sum_i z_i ||W_dec[i]|| / rms(x)
//             (Anthropic's April-2024 update: L1 weighted by decoder norms;
//             divided by the batch's RMS centred norm so the coefficient does
//             not depend on the activations' scale), l1 warmed up linearly
//             over l1_warmup_steps.
//   topk      loss = FVU + auxk * AuxK (Gao et al. 2024).
//   batchtopk the top k × batch activations of the whole batch (Bussmann et
//             al. 2024) + AuxK; the inference threshold is an exponential
//             moving average of the smallest activation kept per batch.
//   jumprelu  loss = FVU + l0_coefficient * (L0 / target_l0 - 1)^2 with the
//             straight-through estimators of jumprelu.h; the threshold is
//             learned as log-threshold.
// input_norm = layer_norm: every row is standardised (sae_model.h's
// LayerNormRows) before anything else, so the SAE is trained, and the
// statistics reported, in the normalised space; Model() carries the flag so
// inference normalises and maps back the same way. BatchTopK needs this when
// row norms vary a lot: its batch-wide competition ranks raw activations,
// and while the encoder is not yet selective every latent's activation on a
// row scales with that row's norm, so the largest-norm rows take most of the
// k x batch slots and low-norm rows get none (docs/jobs/sae.train.md).
// Shared: FVU = sum ||x - x^||^2 / sum ||x - mean(x)||^2 (scale-free MSE);
// decoder rows kept at unit norm, with each row's gradient component along
// the row removed before the step; b_dec from the geometric median of a
// first sample (InitDecoderBias); Adam (0.9, 0.999); learning rate warmed up
// linearly over warmup_steps and decayed linearly over the last
// decay_fraction of the steps; global gradient-norm clipping.
// AuxK (topk, batchtopk): the top k_aux = min(d_in/2, #dead) dead latents
// reconstruct the residual x - x^ (detached), scaled by min(#dead/(d_in/2), 1).
// Speed (topk, batchtopk): the one dense product is the encoder's forward
// matmul; the kept pre-activations carry the gradients alone
// (gathered_linear.h) and the decoder sums only the kept latents' rows, so
// no [batch, d_sae] matrix is built for the backward pass or the decoder.
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
  InputNorm input_norm = InputNorm::kNone;
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

  // b_dec := geometric median of `x` ([n, d_in], normalised per input_norm).
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
  // pre: the step's pre-activations (without autograd); xc = x - b_dec.
  torch::Tensor AuxK(const torch::Tensor& x, const torch::Tensor& xc, const torch::Tensor& x_hat,
                     const torch::Tensor& pre, const torch::Tensor& dead, int64_t n_dead);
  std::vector<torch::Tensor> Parameters() const;
  torch::Tensor Normalized(const torch::Tensor& x) const;

  SaeTrainerOptions options_;
  // encoder_ is W_enc transposed, [d_sae, d_in]: each latent's encoder
  // weights contiguous, as the sparse backward pass reads and writes them.
  torch::Tensor encoder_, b_enc_, W_dec_, b_dec_, log_threshold_;
  torch::Tensor batch_threshold_;  // [] float, batchtopk; negative until first step
  torch::Tensor pre_buffer_;      // topk/batchtopk pre-activations, reused across steps
  std::unique_ptr<torch::optim::Adam> adam_;
  DeadLatentTracker dead_;
  int64_t step_ = 0;
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_TRAINER_H_
