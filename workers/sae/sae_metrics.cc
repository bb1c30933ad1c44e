#include "workers/sae/sae_metrics.h"

#include <algorithm>
#include <limits>

namespace loupe::sae {

void FvuAccumulator::Add(const torch::Tensor& x, const torch::Tensor& x_hat) {
  torch::NoGradGuard no_grad;
  const torch::Tensor xd = x.to(torch::kDouble);
  squared_error_ += (xd - x_hat.to(torch::kDouble)).pow(2).sum().item<double>();
  squared_norm_ += xd.pow(2).sum().item<double>();
  torch::Tensor s = xd.sum(0).cpu();
  sum_ = sum_.defined() ? sum_ + s : s;
  count_ += x.size(0);
}

double FvuAccumulator::Fvu() const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  const double mean_sq = sum_.pow(2).sum().item<double>() / static_cast<double>(count_);
  const double total_variance = squared_norm_ - mean_sq;
  // Cancellation can leave a tiny positive remainder for identical samples.
  if (!(total_variance > 1e-12 * std::max(squared_norm_, 1e-300))) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return squared_error_ / total_variance;
}

double Fvu(const torch::Tensor& x, const torch::Tensor& x_hat) {
  FvuAccumulator acc;
  acc.Add(x, x_hat);
  return acc.Fvu();
}

double MeanL0(const torch::Tensor& values) {
  torch::NoGradGuard no_grad;
  if (values.size(0) == 0) return 0.0;
  return (values > 0).sum().item<double>() / static_cast<double>(values.size(0));
}

double Mmcs(const torch::Tensor& true_directions, const torch::Tensor& decoder_rows) {
  torch::NoGradGuard no_grad;
  const int64_t n = true_directions.size(0);
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const torch::Tensor dec = decoder_rows.to(torch::kFloat);
  const torch::Tensor d = dec / dec.norm(2, 1, true).clamp_min(1e-12);
  const torch::Tensor t_all = true_directions.to(d.device(), torch::kFloat);
  // ~16M similarities per chunk.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, d.size(0)));
  double total = 0;
  for (int64_t start = 0; start < n; start += chunk) {
    torch::Tensor t = t_all.slice(0, start, std::min(n, start + chunk));
    t = t / t.norm(2, 1, true).clamp_min(1e-12);
    total += torch::mm(t, d.t()).amax(1).to(torch::kDouble).sum().item<double>();
  }
  return total / static_cast<double>(n);
}

torch::Tensor FiredMask(const torch::Tensor& indices, const torch::Tensor& values, int64_t d_sae) {
  torch::NoGradGuard no_grad;
  torch::Tensor fired = torch::zeros({d_sae}, indices.options().dtype(torch::kBool));
  fired.index_put_({indices.masked_select(values > 0)}, true);
  return fired;
}

DeadLatentTracker::DeadLatentTracker(int64_t d_sae, int64_t window_tokens, torch::Device device)
    : window_tokens_(window_tokens),
      tokens_since_fired_(torch::zeros({d_sae}, torch::TensorOptions().dtype(torch::kLong).device(device))) {}

void DeadLatentTracker::Update(const torch::Tensor& indices, const torch::Tensor& values) {
  torch::NoGradGuard no_grad;
  torch::Tensor fired = FiredMask(indices, values, tokens_since_fired_.size(0));
  tokens_since_fired_.add_(indices.size(0));
  tokens_since_fired_.masked_fill_(fired, 0);
}

void DeadLatentTracker::UpdateFired(const torch::Tensor& fired, int64_t tokens) {
  torch::NoGradGuard no_grad;
  tokens_since_fired_.add_(tokens);
  tokens_since_fired_.masked_fill_(fired.to(tokens_since_fired_.device()), 0);
}

torch::Tensor DeadLatentTracker::DeadMask() const { return tokens_since_fired_ >= window_tokens_; }

int64_t DeadLatentTracker::DeadCount() const { return DeadMask().sum().item<int64_t>(); }

double DeadLatentTracker::DeadFraction() const {
  return static_cast<double>(DeadCount()) / static_cast<double>(tokens_since_fired_.size(0));
}

}  // namespace loupe::sae
