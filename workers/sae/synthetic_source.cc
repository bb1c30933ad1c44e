#include "workers/sae/synthetic_source.h"

#include <cmath>

namespace loupe::sae {

namespace idx = torch::indexing;

SyntheticSource::SyntheticSource(const SyntheticOptions& options, at::Generator gen,
                                 torch::Device device)
    : options_(options), gen_(std::move(gen)), device_(device) {
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
  torch::Tensor f = torch::randn({options_.n_features, options_.d_model}, gen_, cpu);
  features_ = (f / f.norm(2, /*dim=*/1, /*keepdim=*/true).clamp_min(1e-12)).to(device_);
  groups_ = (options_.n_features + kGroupSize - 1) / kGroupSize;
  // Phi^-1(1 - p) = sqrt(2) erfinv(1 - 2p); only the correlated path needs it.
  threshold_ = std::sqrt(2.0) *
               torch::erfinv(torch::tensor(1.0 - 2.0 * options_.firing_probability, torch::kDouble))
                   .item<double>();
}

SyntheticBatch SyntheticSource::SampleWithCodes(int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  const double p = options_.firing_probability;
  const double rho = options_.correlation;

  // Per (sample, group): probability q that each of its features fires.
  torch::Tensor q;
  if (rho <= 0.0) {
    q = torch::full({batch_size, groups_}, p, f32);
  } else {
    torch::Tensor g = torch::randn({batch_size, groups_}, gen_, f32.dtype(torch::kDouble));
    if (rho >= 1.0) {
      q = (g > threshold_).to(torch::kFloat);
    } else {
      torch::Tensor z = (std::sqrt(rho) * g - threshold_) / std::sqrt(1.0 - rho);
      q = (0.5 * torch::erfc(-z / std::sqrt(2.0))).to(torch::kFloat);
    }
  }
  torch::Tensor counts =
      torch::binomial(torch::full({batch_size, groups_}, static_cast<double>(kGroupSize), f32), q, gen_)
          .to(torch::kLong)
          .reshape(-1);

  // For each (sample, group) with c > 0 firings, pick c distinct members: the
  // first c of a random permutation of the group (uniform subsets of size c
  // given c ~ Binomial make the members' indicators i.i.d. Bernoulli(q)).
  torch::Tensor cells = counts.nonzero().reshape(-1);
  torch::Tensor c = counts.index_select(0, cells);
  torch::Tensor perm = torch::rand({cells.size(0), kGroupSize}, gen_, f32).argsort(/*dim=*/1, /*descending=*/false);
  torch::Tensor chosen = torch::arange(kGroupSize, torch::kLong).unsqueeze(0) < c.unsqueeze(1);
  torch::Tensor cell = cells.unsqueeze(1).expand({cells.size(0), kGroupSize}).masked_select(chosen);
  torch::Tensor slot = perm.masked_select(chosen);
  torch::Tensor sample = cell.div(groups_, "floor");
  torch::Tensor feature = cell.remainder(groups_) * kGroupSize + slot;
  // The last group may be partial; members past n_features do not exist
  // (dropping them leaves the survivors' indicators i.i.d. as well).
  torch::Tensor exists = feature < options_.n_features;
  sample = sample.masked_select(exists);
  feature = feature.masked_select(exists);
  torch::Tensor magnitude =
      torch::rand({feature.size(0)}, gen_, f32) * (kMaxMagnitude - kMinMagnitude) + kMinMagnitude;

  torch::Tensor x = torch::zeros({batch_size, options_.d_model}, f32.device(device_));
  x.index_add_(0, sample.to(device_),
               features_.index_select(0, feature.to(device_)) * magnitude.to(device_).unsqueeze(1));
  return {x, sample, feature, magnitude};
}

}  // namespace loupe::sae
