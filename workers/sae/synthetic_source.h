// SyntheticSource: activations from a toy linear-representation model, with
// known ground-truth features to score an SAE against.
//
// Model. `n_features` directions f_i are drawn once, uniformly on the unit
// sphere of R^d_model. A sample is x = sum_i a_i f_i with a_i = m_i * s_i:
// s_i in {0,1} says whether feature i fires, m_i ~ Uniform[0.5, 1.5) is its
// magnitude (mean 1, bounded away from 0 so that a firing feature is always a
// visible signal). Each feature fires with probability p.
//
// Correlation (a Gaussian copula over groups). Features are split into groups
// of kGroupSize consecutive indices (directions are random, so which features
// share a group carries no geometric meaning). Each sample draws one latent
// g ~ N(0,1) per group and e_i ~ N(0,1) per feature, and feature i fires iff
//   sqrt(rho) * g + sqrt(1 - rho) * e_i > Phi^-1(1 - p).
// Every feature keeps marginal firing probability exactly p; features of one
// group co-fire more often as rho grows (rho = 1: a group fires all at once);
// features of different groups stay independent. rho = 0 is the independent
// model. Sampling conditions on g: given g, a group's features fire
// independently with q = Phi((sqrt(rho) g - tau) / sqrt(1 - rho)), so one
// Binomial(kGroupSize, q) draw per (sample, group) plus a random subset of
// that size replaces a dense Bernoulli per (sample, feature) — the cost scales
// with the number of firings, not with batch × n_features.
//
// Randomness. All draws come from the generator given at construction, on
// the CPU (per-job generators; no global RNG state), so a seed gives the same
// data on every device; results are then moved to `device`.
//
// Not thread-safe: Sample advances the generator. One source per job.
#ifndef LOUPE_WORKERS_SAE_SYNTHETIC_SOURCE_H_
#define LOUPE_WORKERS_SAE_SYNTHETIC_SOURCE_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>

namespace loupe::sae {

struct SyntheticOptions {
  int64_t d_model = 64;
  int64_t n_features = 512;
  double firing_probability = 0.01;
  double correlation = 0.0;  // rho in [0, 1]
};

// A batch with its ground truth: x = sum over events of magnitude * f_feature,
// added into row `sample`.
struct SyntheticBatch {
  torch::Tensor x;          // [batch, d_model] float32 on the source's device
  torch::Tensor sample;     // [events] int64, CPU
  torch::Tensor feature;    // [events] int64, CPU
  torch::Tensor magnitude;  // [events] float32, CPU
};

class SyntheticSource {
 public:
  static constexpr int64_t kGroupSize = 16;
  static constexpr double kMinMagnitude = 0.5;
  static constexpr double kMaxMagnitude = 1.5;

  // Draws the feature directions from `gen`, which the source then keeps
  // using (pass a generator dedicated to it).
  SyntheticSource(const SyntheticOptions& options, at::Generator gen, torch::Device device);

  torch::Tensor Sample(int64_t batch_size) { return SampleWithCodes(batch_size).x; }
  SyntheticBatch SampleWithCodes(int64_t batch_size);

  // [n_features, d_model] float32 unit rows, on the device.
  const torch::Tensor& features() const { return features_; }
  const SyntheticOptions& options() const { return options_; }
  // The generator's state (a byte tensor), for checkpoints, and back.
  torch::Tensor GeneratorState() const { return gen_.get_state(); }
  void SetGeneratorState(const torch::Tensor& state) { gen_.set_state(state); }

 private:
  SyntheticOptions options_;
  at::Generator gen_;
  torch::Device device_;
  torch::Tensor features_;
  int64_t groups_;
  double threshold_;  // tau = Phi^-1(1 - p)
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SYNTHETIC_SOURCE_H_
