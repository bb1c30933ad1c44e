// Held-out evaluation of a TopK SAE on fresh synthetic samples: fvu, l0 and
// dead_fraction as defined in sae_metrics.h, over one set of samples. Pure
// apart from advancing the source's generator; use from one thread.
#ifndef LOUPE_WORKERS_SAE_SAE_EVAL_H_
#define LOUPE_WORKERS_SAE_SAE_EVAL_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/sae/synthetic_source.h"
#include "workers/sae/topk_sae.h"

namespace loupe::sae {

struct HeldOutMetrics {
  double fvu = 0;
  double l0 = 0;
  double dead_fraction = 0;  // latents that never fire on the whole set
  int64_t samples = 0;
};

// Draws `samples` fresh samples in chunks of 4096 and scores `model` on them.
// `check_continue` runs before each chunk; a non-OK status stops and is
// returned (cancellation).
absl::StatusOr<HeldOutMetrics> EvaluateHeldOut(const TopKSae& model, SyntheticSource& source,
                                               int64_t samples,
                                               const std::function<absl::Status()>& check_continue);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_EVAL_H_
