#include "workers/sae/sae_evaluation.h"

#include <algorithm>

#include "workers/lm/activations/splice.h"
#include "workers/sae/sae_metrics.h"

namespace loupe::sae {

std::map<std::string, double> SaeEvalMetrics::AsMap() const {
  std::map<std::string, double> m = {{"fvu", fvu},
                                     {"nmse", nmse},
                                     {"l0", l0},
                                     {"dead_fraction", dead_fraction},
                                     {"dead_window_tokens", static_cast<double>(rows)}};
  if (has_mmcs) m["mmcs"] = mmcs;
  if (has_splice) {
    m["ce_clean"] = ce_clean;
    m["ce_sae"] = ce_sae;
    m["ce_zero"] = ce_zero;
    m["ce_loss_score"] = ce_loss_score;
    m["kl_div"] = kl_div;
    m["splice_tokens"] = static_cast<double>(splice_tokens);
  }
  return m;
}

absl::StatusOr<SaeEvalMetrics> EvaluateSae(const SaeModel& model, OpenedSource& source, const SaeEvalOptions& options,
                                           const std::function<absl::Status()>& check_continue) {
  torch::NoGradGuard no_grad;
  SaeEvalMetrics out;
  FvuAccumulator fvu;
  double err = 0, norm = 0, active = 0;
  torch::Tensor fired = torch::zeros({model.d_sae()}, model.W_dec.options().dtype(torch::kBool));
  for (int64_t done = 0; done < options.rows;) {
    if (absl::Status s = check_continue(); !s.ok()) return s;
    const int64_t n = std::min(options.batch, options.rows - done);
    absl::StatusOr<torch::Tensor> x = source.eval->Next(n);
    if (!x.ok()) return x.status();
    torch::Tensor z = model.Encode(*x);
    torch::Tensor x_hat = model.Denormalize(model.Decode(z), *x);
    fvu.Add(*x, x_hat);
    err += (*x - x_hat).pow(2).sum().item<double>();
    norm += x->pow(2).sum().item<double>();
    torch::Tensor nonzero = z != 0;
    active += nonzero.sum().item<double>();
    fired.logical_or_(nonzero.any(0));
    done += n;
  }
  out.rows = options.rows;
  out.fvu = fvu.Fvu();
  out.nmse = norm > 0 ? err / norm : 0;
  out.l0 = options.rows > 0 ? active / static_cast<double>(options.rows) : 0;
  out.dead_fraction = 1.0 - fired.to(torch::kDouble).mean().item<double>();
  if (source.ground_truth.defined()) {
    out.has_mmcs = true;
    out.mmcs = Mmcs(source.ground_truth, model.W_dec);
  }
  if (source.model && options.splice_sequences > 0 && source.eval_sequences.defined()) {
    const int64_t n_seq = std::min<int64_t>(options.splice_sequences, source.eval_sequences.size(0));
    lm::SpliceOptions so;
    so.skip_positions = source.skip_positions;
    so.progress = [&](int64_t, int64_t) { return check_continue(); };
    std::vector<lm::SpliceFn> replacements = {
        [&](const torch::Tensor& rows) { return model.Reconstruct(rows); },
        [](const torch::Tensor& rows) { return torch::zeros_like(rows); }};
    absl::StatusOr<lm::SpliceResult> r =
        lm::EvaluateSplices(*source.model, source.eval_sequences.slice(0, 0, n_seq), source.hook, replacements, so);
    if (!r.ok()) return r.status();
    out.has_splice = true;
    out.ce_clean = r->ce_clean;
    out.ce_sae = r->ce_spliced[0];
    out.ce_zero = r->ce_spliced[1];
    out.kl_div = r->kl[0];
    out.ce_loss_score = lm::CeLossScore(r->ce_clean, out.ce_sae, out.ce_zero);
    out.splice_tokens = r->tokens;
  }
  return out;
}

}  // namespace loupe::sae
