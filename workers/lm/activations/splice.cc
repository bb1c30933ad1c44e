#include "workers/lm/activations/splice.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace loupe::lm {
namespace {

// Wraps a SpliceFn (rows [N, d]) as a hook on [B, T, d]: positions before
// `skip` pass through unchanged.
HookFn RowsHook(const SpliceFn& fn, int64_t skip, absl::Status* error) {
  return [&fn, skip, error](const torch::Tensor& act) -> torch::Tensor {
    const int64_t B = act.size(0), T = act.size(1), d = act.size(2);
    torch::Tensor rows = act.slice(1, skip).reshape({-1, d}).to(torch::kFloat32);
    torch::Tensor out = fn(rows);
    if (!out.defined() || out.sizes() != rows.sizes()) {
      *error = absl::InvalidArgumentError(absl::StrCat("a splice replacement returned shape ",
                                                       out.defined() ? c10::str(out.sizes()) : "undefined",
                                                       " for rows of shape ", c10::str(rows.sizes())));
      return act;
    }
    out = out.to(act.dtype()).reshape({B, T - skip, d});
    if (skip == 0) return out;
    return torch::cat({act.slice(1, 0, skip), out}, 1);
  };
}

}  // namespace

absl::StatusOr<SpliceResult> EvaluateSplices(CausalLM& model, const torch::Tensor& sequences, const HookPoint& hook,
                                             const std::vector<SpliceFn>& replacements, const SpliceOptions& options) {
  if (sequences.dim() != 2 || sequences.scalar_type() != torch::kLong) {
    return absl::InvalidArgumentError("'sequences' must be int64 [n, T]");
  }
  if (hook.layer < 0 || hook.layer >= model.NumLayers()) {
    return absl::InvalidArgumentError(absl::StrCat("'hook' names layer ", hook.layer, " but the model has ",
                                                   model.NumLayers(), " layers"));
  }
  const int64_t skip = options.skip_positions;
  const int64_t T = sequences.size(1);
  if (skip < 0 || T < skip + 2) {
    return absl::InvalidArgumentError(absl::StrCat("sequences of ", T, " tokens leave nothing to score after ",
                                                   skip, " skipped positions"));
  }
  torch::NoGradGuard no_grad;
  const int64_t n = sequences.size(0), step = std::max<int64_t>(options.batch_sequences, 1);
  const size_t R = replacements.size();
  double clean_sum = 0;
  std::vector<double> spliced_sum(R, 0.0), kl_sum(R, 0.0);
  int64_t tokens = 0;
  for (int64_t begin = 0; begin < n; begin += step) {
    const torch::Tensor ids = sequences.slice(0, begin, std::min(begin + step, n)).to(model.device());
    if (absl::Status s = model.CheckForward(ids); !s.ok()) return s;
    // Predictions from positions skip..T-2 (their inputs were spliced) of
    // tokens skip+1..T-1.
    const torch::Tensor targets = ids.slice(1, skip + 1);
    auto scored_logp = [&](const torch::Tensor& logits) {
      return torch::log_softmax(logits.slice(1, skip, T - 1).to(torch::kFloat32), -1);
    };
    const torch::Tensor clean_logp = scored_logp(model.Forward(ids));
    auto ce_sum = [&](const torch::Tensor& logp) {
      return -logp.gather(-1, targets.unsqueeze(-1)).sum().item<double>();
    };
    clean_sum += ce_sum(clean_logp);
    tokens += targets.numel();
    for (size_t r = 0; r < R; ++r) {
      absl::Status error;
      Hooks hooks;
      hooks.Add(hook, RowsHook(replacements[r], skip, &error));
      ForwardOptions o;
      o.hooks = &hooks;
      const torch::Tensor logits = model.Forward(ids, o);
      if (!error.ok()) return error;
      const torch::Tensor logp = scored_logp(logits);
      spliced_sum[r] += ce_sum(logp);
      kl_sum[r] += (clean_logp.exp() * (clean_logp - logp)).sum().item<double>();
    }
    if (options.progress) {
      if (absl::Status s = options.progress(std::min(begin + step, n), n); !s.ok()) return s;
    }
  }
  SpliceResult result;
  result.tokens = tokens;
  result.ce_clean = clean_sum / tokens;
  for (size_t r = 0; r < R; ++r) {
    result.ce_spliced.push_back(spliced_sum[r] / tokens);
    result.kl.push_back(kl_sum[r] / tokens);
  }
  return result;
}

double CeLossScore(double ce_clean, double ce_spliced, double ce_zero) {
  const double denominator = ce_zero - ce_clean;
  if (denominator == 0) return std::numeric_limits<double>::quiet_NaN();
  return (ce_zero - ce_spliced) / denominator;
}

}  // namespace loupe::lm
