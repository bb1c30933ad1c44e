#include "workers/sae/sae_eval.h"

#include <algorithm>

#include "workers/sae/sae_metrics.h"

namespace loupe::sae {

absl::StatusOr<HeldOutMetrics> EvaluateHeldOut(const TopKSae& model, SyntheticSource& source,
                                               int64_t samples,
                                               const std::function<absl::Status()>& check_continue) {
  torch::NoGradGuard no_grad;
  // Bounds memory ([chunk, d_sae] pre-activations) and cancellation latency.
  constexpr int64_t kChunk = 4096;
  FvuAccumulator fvu;
  double active = 0;
  torch::Tensor fired = torch::zeros({model.d_sae()}, model.W_dec().options().dtype(torch::kBool));
  for (int64_t done = 0; done < samples; done += kChunk) {
    if (absl::Status s = check_continue(); !s.ok()) return s;
    const int64_t n = std::min(kChunk, samples - done);
    torch::Tensor x = source.Sample(n);
    TopKCode code = model.Encode(x);
    fvu.Add(x, model.Decode(code.values, code.indices));
    active += MeanL0(code.values) * static_cast<double>(n);
    fired.logical_or_(FiredMask(code.indices, code.values, model.d_sae()));
  }
  HeldOutMetrics m;
  m.samples = samples;
  m.fvu = fvu.Fvu();
  m.l0 = samples > 0 ? active / static_cast<double>(samples) : 0.0;
  m.dead_fraction = 1.0 - fired.to(torch::kDouble).mean().item<double>();
  return m;
}

}  // namespace loupe::sae
