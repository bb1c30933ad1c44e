// TopKTrainer: one optimisation step at a time for a TopKSae, following the
// OpenAI / sparsify TopK recipe:
//   loss = FVU(x, x^) + auxk_coefficient * AuxK, with
//   FVU  = sum ||x - x^||^2 / sum ||x - mean_batch(x)||^2 (scale-free MSE);
//   AuxK = the same normalised error of the dead latents' reconstruction of
//          the residual e = x - x^ (detached): the top k_aux = min(d_in / 2,
//          #dead) dead pre-activations, scaled by min(#dead / (d_in / 2), 1)
//          as in SAELens; it gives dead latents a gradient towards what the
//          live ones miss, instead of leaving them dead.
//   Adam (betas 0.9/0.999, eps 6.25e-10 as OpenAI), learning rate warmed up
//   linearly over warmup_steps, constant, then decayed linearly to 0 over the
//   last decay_fraction of the steps (sparsify/OpenAI); decoder gradients are
//   projected onto the tangent of the unit sphere before each step and the
//   rows renormalised after it.
// The metrics of a step come from its own forward pass: no extra pass.
//
// Borrows the TopKSae (which must outlive the trainer); one thread at a time.
#ifndef LOUPE_WORKERS_SAE_TOPK_TRAINER_H_
#define LOUPE_WORKERS_SAE_TOPK_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "workers/sae/sae_metrics.h"
#include "workers/sae/topk_sae.h"

namespace loupe::sae {

struct TrainerOptions {
  double lr = 3e-3;
  int64_t warmup_steps = 100;
  int64_t total_steps = 1000;
  double decay_fraction = 0.2;
  double auxk_coefficient = 1.0 / 32;
  // A latent is dead (and joins AuxK) after this many tokens without firing.
  int64_t dead_window_tokens = 32768;
};

struct StepStats {
  int64_t step = 0;     // 1-based
  double fvu = 0;       // of this batch, before the step
  double l0 = 0;
  double auxk = 0;      // 0 when no latent is dead
  double dead_fraction = 0;  // over the tracker's window, after this batch
  double lr = 0;
};

class TopKTrainer {
 public:
  TopKTrainer(TopKSae* sae, const TrainerOptions& options);

  StepStats Step(const torch::Tensor& x);
  // Learning rate of 1-based step `step`.
  double LearningRate(int64_t step) const;
  const DeadLatentTracker& dead_tracker() const { return dead_; }
  int64_t steps_done() const { return step_; }

 private:
  TopKSae* sae_;
  TrainerOptions options_;
  std::unique_ptr<torch::optim::Adam> adam_;
  DeadLatentTracker dead_;
  int64_t step_ = 0;
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_TOPK_TRAINER_H_
