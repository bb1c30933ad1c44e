// The optimizer recipe of lm.train: AdamW with decoupled weight decay on
// matrices only (embeddings and projections; not norms or biases), a linear
// warm-up and a cosine decay to a tenth of the peak learning rate, as in
// GPT-2/nanoGPT-style small-model training.
//
// LmOptimizer owns the torch optimizer; the parameters belong to the model.
// Not thread-safe; one per training loop.
#ifndef LOUPE_WORKERS_LM_JOBS_OPTIM_H_
#define LOUPE_WORKERS_LM_JOBS_OPTIM_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace loupe::lm {

struct LmOptimizerOptions {
  double lr = 2e-3;           // peak
  int64_t warmup_steps = 0;   // linear from lr/warmup_steps to lr
  int64_t total_steps = 1;    // cosine from lr (after warm-up) to min_lr_ratio·lr at the last step
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;  // on matrices only
  double beta1 = 0.9;
  double beta2 = 0.95;        // steadier than 0.999 for short runs with small batches
  double grad_clip = 1.0;     // max global L2 norm of the gradients; 0: off
};

// Learning rate at 1-based `step`.
double ScheduledLr(const LmOptimizerOptions& o, int64_t step);

class LmOptimizer {
 public:
  LmOptimizer(torch::nn::Module& model, const LmOptimizerOptions& options);

  // Sets the scheduled learning rate for `step`, clips the gradients, takes a
  // step and clears them. Returns the gradient norm before clipping.
  double Step(int64_t step);
  double lr() const { return lr_; }

 private:
  LmOptimizerOptions options_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> adam_;
  double lr_ = 0;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_OPTIM_H_
