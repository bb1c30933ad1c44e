// Analysis 4 of "Decomposing the Dark Matter of Sparse Autoencoders"
// (train_on_error.py): TopK SAEs trained with one budget on the SAE error,
// on its linear part and on its nonlinear part, to see which part holds
// learnable features (the paper finds the nonlinear error gives worse SAEs).
//
// Why training lives here: the job takes its SAEs as inputs and trains none
// of them, except these, whose training data (error components of another
// SAE) exist only inside the analysis. The optimisation itself is
// workers/sae's SaeTrainer with architecture topk (the sparsify/OpenAI
// recipe: FVU loss, AuxK, Adam with warmup and linear decay, gradient
// clipping at 1 as train_on_error.py, unit-norm decoder, geometric-median
// b_dec); this file only feeds it batches of a fixed matrix and evaluates.
//
// One thread at a time (LibTorch's intra-op threads are the caller's).
#ifndef LOUPE_WORKERS_DARK_MATTER_ERROR_SAE_H_
#define LOUPE_WORKERS_DARK_MATTER_ERROR_SAE_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/dark_matter/sae_handle.h"

namespace loupe::dark_matter {

struct ErrorSaeOptions {
  int64_t d_sae = 256;
  int64_t k = 16;
  int64_t steps = 1000;
  int64_t batch_size = 256;
  double lr = 1e-3;
  int64_t warmup_steps = 50;
  uint64_t seed = 0;
  // Called every few steps with (step, total); a non-OK status stops.
  std::function<absl::Status(int64_t, int64_t)> progress;
};

struct ErrorSaeResult {
  double fvu = 0;            // on the test rows, of the target's own variance
  double l0 = 0;             // mean non-zero codes per test row
  double dead_fraction = 0;  // latents that never fire on the test rows
  double final_train_fvu = 0;  // mean batch FVU of the last 10% of steps
  SaeHandle sae;
};

// train, test: [n, d] rows of the target. Sampling draws batches with
// replacement from `train` (seeded), so every target gets the same batches
// of row indices.
absl::StatusOr<ErrorSaeResult> TrainErrorSae(const torch::Tensor& train, const torch::Tensor& test,
                                             const ErrorSaeOptions& options);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_ERROR_SAE_H_
