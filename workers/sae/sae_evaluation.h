// Scores an SAE (any architecture) on held-out activations, and — for
// language-model sources — by splicing its reconstruction back into the model:
//   fvu           sum ||x - x^||^2 / sum ||x - mean(x)||^2
//   nmse          sum ||x - x^||^2 / sum ||x||^2   (OpenAI's normalised MSE)
//   l0            mean number of non-zero latents per row
//   dead_fraction latents that never fire on the `rows` scored (the window)
//   mmcs          (synthetic) recovery of the ground-truth directions
//   ce_clean, ce_sae, ce_zero   next-token CE of the model, with the hook's
//                 activation replaced by the SAE's reconstruction, by zeros
//   ce_loss_score (ce_zero - ce_sae) / (ce_zero - ce_clean)
//   kl_div        mean KL(clean || with the SAE) of next-token distributions
// Reads the stream; use from one thread.
#ifndef LOUPE_WORKERS_SAE_SAE_EVALUATION_H_
#define LOUPE_WORKERS_SAE_SAE_EVALUATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "workers/sae/sae_model.h"
#include "workers/sae/sae_sources.h"

namespace loupe::sae {

struct SaeEvalOptions {
  int64_t rows = 16384;
  int64_t batch = 4096;
  int64_t splice_sequences = 0;  // lm sources only; 0: no splice
};

struct SaeEvalMetrics {
  double fvu = 0, nmse = 0, l0 = 0, dead_fraction = 0;
  int64_t rows = 0;  // the dead-fraction window, in tokens
  bool has_mmcs = false;
  double mmcs = 0;
  bool has_splice = false;
  double ce_clean = 0, ce_sae = 0, ce_zero = 0, ce_loss_score = 0, kl_div = 0;
  int64_t splice_tokens = 0;

  // Name → value of every metric that was measured (result field names).
  std::map<std::string, double> AsMap() const;
};

// `check_continue` runs between batches; a non-OK status stops and is returned.
absl::StatusOr<SaeEvalMetrics> EvaluateSae(const SaeModel& model, OpenedSource& source, const SaeEvalOptions& options,
                                           const std::function<absl::Status()>& check_continue);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_EVALUATION_H_
