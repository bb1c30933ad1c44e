// TopKSae: parameters and forward pass of a TopK sparse autoencoder
// (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):
//   pre = (x - b_dec) W_enc + b_enc            [batch, d_sae]
//   z   = TopK_k(ReLU(pre))                    k non-negative values per row
//   x^  = z W_dec + b_dec
// with W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in] (one unit-norm
// row per latent), b_dec [d_in] — SAELens's names and shapes.
//
// Initialisation follows the OpenAI/sparsify recipe: decoder rows random unit
// vectors, W_enc = W_dec^T (so each latent starts out reading its own
// direction), b_enc = 0, and b_dec set from data by InitDecoderBias.
//
// Owns its four tensors (float32 leaves with requires_grad, on one device).
// Encode/Decode are const but build autograd graphs into the shared leaves:
// use one TopKSae from one thread at a time.
#ifndef LOUPE_WORKERS_SAE_TOPK_SAE_H_
#define LOUPE_WORKERS_SAE_TOPK_SAE_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace loupe::sae {

// A batch's sparse code.
struct TopKCode {
  torch::Tensor pre;      // [batch, d_sae] pre-activations (before ReLU)
  torch::Tensor values;   // [batch, k] ReLU'd top-k values, >= 0
  torch::Tensor indices;  // [batch, k] int64 latent indices
};

class TopKSae {
 public:
  // Random init from `gen` (CPU draws, then moved to `device`).
  TopKSae(int64_t d_in, int64_t d_sae, int64_t k, torch::Device device, at::Generator& gen);
  // Adopts trained weights (e.g. read back from SAELens files); checks shapes.
  static absl::StatusOr<TopKSae> FromWeights(torch::Tensor W_enc, torch::Tensor b_enc,
                                             torch::Tensor W_dec, torch::Tensor b_dec, int64_t k);

  TopKCode Encode(const torch::Tensor& x) const;
  // sum_j values[:, j] * W_dec[indices[:, j]] (+ b_dec): a gather of k rows
  // per sample, cheaper than a dense [batch, d_sae] @ W_dec product.
  torch::Tensor Decode(const torch::Tensor& values, const torch::Tensor& indices) const;
  torch::Tensor DecodeWithoutBias(const torch::Tensor& values, const torch::Tensor& indices) const;

  // b_dec := geometric median of `x` ([n, d_in]).
  void InitDecoderBias(const torch::Tensor& x);
  // Removes from W_dec.grad each row's component along that row, so a step
  // moves rows along the unit sphere's tangent (the norm constraint would
  // otherwise undo part of every step).
  void RemoveParallelDecoderGrad();
  // Rescales W_dec rows to unit norm.
  void NormalizeDecoder();

  std::vector<torch::Tensor> parameters() const { return {W_enc_, b_enc_, W_dec_, b_dec_}; }
  const torch::Tensor& W_enc() const { return W_enc_; }
  const torch::Tensor& b_enc() const { return b_enc_; }
  const torch::Tensor& W_dec() const { return W_dec_; }
  const torch::Tensor& b_dec() const { return b_dec_; }
  int64_t d_in() const { return W_dec_.size(1); }
  int64_t d_sae() const { return W_dec_.size(0); }
  int64_t k() const { return k_; }

 private:
  TopKSae() = default;

  torch::Tensor W_enc_, b_enc_, W_dec_, b_dec_;
  int64_t k_ = 0;
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_TOPK_SAE_H_
