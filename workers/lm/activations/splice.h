// Splicing a replacement into a model: the CE-loss and KL measures SAE users
// judge reconstructions by.
//
// For each sequence the model runs once clean and once per replacement; a
// replacement is a function of the activation at `hook` (rows [N, d_model],
// the positions from skip_positions on, all sequences of a batch flattened)
// that returns what the model continues with. Next-token cross-entropy is
// averaged over the predicted positions whose input position was spliced
// (position t predicts token t+1 for t >= skip_positions), so clean and
// spliced losses are over the same tokens.
//
//   ce_clean      mean CE of the unmodified model
//   ce_spliced[i] mean CE with replacement i
//   kl[i]         mean KL(clean ‖ spliced i) of the next-token distributions
// With replacements {x̂(x), 0} the CE-loss score is
//   (ce_zero − ce_sae) / (ce_zero − ce_clean).
//
// Needs the model only for reading; grad mode off inside. Thread-compatible.
#ifndef LOUPE_WORKERS_LM_ACTIVATIONS_SPLICE_H_
#define LOUPE_WORKERS_LM_ACTIVATIONS_SPLICE_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/hooks.h"

namespace loupe::lm {

// Activation rows [N, d_model] float32 → replacement rows of the same shape.
using SpliceFn = std::function<torch::Tensor(const torch::Tensor& rows)>;

struct SpliceOptions {
  int64_t skip_positions = 1;
  int64_t batch_sequences = 8;
  // Called after each batch with (sequences done, total); a non-OK status
  // (e.g. cancellation) stops and is returned.
  std::function<absl::Status(int64_t, int64_t)> progress;
};

struct SpliceResult {
  double ce_clean = 0;
  std::vector<double> ce_spliced;
  std::vector<double> kl;
  int64_t tokens = 0;  // predicted positions averaged over
};

// sequences: [n, T] int64. INVALID_ARGUMENT for a hook outside the model,
// T <= skip_positions + 1, or a replacement that changes the shape.
absl::StatusOr<SpliceResult> EvaluateSplices(CausalLM& model, const torch::Tensor& sequences, const HookPoint& hook,
                                             const std::vector<SpliceFn>& replacements,
                                             const SpliceOptions& options = {});

// (ce_zero − ce_spliced) / (ce_zero − ce_clean); NaN when the denominator is 0.
double CeLossScore(double ce_clean, double ce_spliced, double ce_zero);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_ACTIVATIONS_SPLICE_H_
