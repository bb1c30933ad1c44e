// Metrics of an SAE's quality, as defined in Loupe's docs (docs/jobs/sae.train.md):
//   fvu   = sum ||x - x^||^2 / sum ||x - mean(x)||^2 over a set of samples
//           (the mean is the set's own; SAE-Dark-Matter's and sparsify's FVU);
//   l0    = mean number of non-zero latents per sample;
//   dead_fraction = share of latents with no activation over a window;
//   mmcs  = mean over ground-truth features of the max cosine similarity
//           with any decoder row (recovery of known features).
// Functions are pure and thread-safe; the accumulator and the tracker are
// plain values, used from one thread.
#ifndef LOUPE_WORKERS_SAE_SAE_METRICS_H_
#define LOUPE_WORKERS_SAE_SAE_METRICS_H_

#include <torch/torch.h>

#include <cstdint>

namespace loupe::sae {

// FVU over a set fed in batches; sums are kept in float64 so that many
// batches do not lose precision. Uses sum ||x - mean||^2 = sum ||x||^2 - n ||mean||^2.
class FvuAccumulator {
 public:
  void Add(const torch::Tensor& x, const torch::Tensor& x_hat);
  // NaN while nothing was added or every sample is identical.
  double Fvu() const;
  int64_t count() const { return count_; }

 private:
  double squared_error_ = 0;
  double squared_norm_ = 0;
  torch::Tensor sum_;  // [d] float64, CPU
  int64_t count_ = 0;
};

double Fvu(const torch::Tensor& x, const torch::Tensor& x_hat);

// Mean count of values > 0 per row (values: [batch, k] or dense [batch, d_sae]).
double MeanL0(const torch::Tensor& values);

// true_directions: [n_features, d]; decoder_rows: [d_sae, d]. Neither needs
// unit rows. Chunked over features so memory stays bounded for wide SAEs.
double Mmcs(const torch::Tensor& true_directions, const torch::Tensor& decoder_rows);

// Which latents fired recently. A latent is dead once it has not fired in the
// last `window_tokens` samples fed to Update (so nothing is dead before
// window_tokens samples have been seen).
class DeadLatentTracker {
 public:
  DeadLatentTracker(int64_t d_sae, int64_t window_tokens, torch::Device device);
  // indices/values: a batch's TopK code ([batch, k]); a latent fires when its
  // value is > 0.
  void Update(const torch::Tensor& indices, const torch::Tensor& values);
  // Same for a batch of `tokens` samples given which latents fired ([d_sae] bool).
  void UpdateFired(const torch::Tensor& fired, int64_t tokens);
  // Counters for checkpoints: [d_sae] int64 tokens since each latent fired.
  const torch::Tensor& tokens_since_fired() const { return tokens_since_fired_; }
  void RestoreTokensSinceFired(const torch::Tensor& t) { tokens_since_fired_.copy_(t); }
  torch::Tensor DeadMask() const;  // [d_sae] bool, on the device
  int64_t DeadCount() const;
  double DeadFraction() const;
  int64_t window_tokens() const { return window_tokens_; }

 private:
  int64_t window_tokens_;
  torch::Tensor tokens_since_fired_;  // [d_sae] int64
};

// Latents that fired at least once in a batch's code: [d_sae] bool.
torch::Tensor FiredMask(const torch::Tensor& indices, const torch::Tensor& values, int64_t d_sae);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_METRICS_H_
