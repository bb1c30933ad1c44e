// Parameter holders shaped and named like the Hugging Face modules they
// mirror, so a model's named_parameters() are the checkpoint's tensor names
// ("...q_proj.weight", "...ln_1.bias"). Each owns its tensors, created
// uninitialised with the given options (a loader or InitWeights fills them).
// Same threading rules as the model that holds them.
#ifndef LOUPE_WORKERS_LM_MODEL_LAYERS_H_
#define LOUPE_WORKERS_LM_MODEL_LAYERS_H_

#include <torch/torch.h>

#include <cstdint>

namespace loupe::lm::layers {

// nn.Linear: weight [out, in], optional bias [out]; y = x W^T + b.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, const torch::TensorOptions& opts);
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::linear(x, weight, bias); }
  torch::Tensor weight, bias;
};

// GPT-2's Conv1D: weight stored transposed, [in, out]; y = x W + b.
class Conv1D : public torch::nn::Module {
 public:
  Conv1D(int64_t in, int64_t out, const torch::TensorOptions& opts);
  // linear() of the transposed view: BLAS reads the transpose, nothing is copied.
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::linear(x, weight.t(), bias); }
  torch::Tensor weight, bias;
};

class LayerNorm : public torch::nn::Module {
 public:
  LayerNorm(int64_t d, double eps, const torch::TensorOptions& opts);
  torch::Tensor operator()(const torch::Tensor& x) const;
  torch::Tensor weight, bias;
  double eps;
};

// RMSNorm as Llama defines it: normalised in float32, cast back to the input
// dtype, then scaled: w * (x / sqrt(mean(x^2) + eps)).
class RmsNorm : public torch::nn::Module {
 public:
  RmsNorm(int64_t d, double eps, const torch::TensorOptions& opts);
  torch::Tensor operator()(const torch::Tensor& x) const;
  torch::Tensor weight;
  double eps;
};

// nn.Embedding: weight [n, d].
class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t n, int64_t d, const torch::TensorOptions& opts);
  torch::Tensor operator()(const torch::Tensor& ids) const { return torch::embedding(weight, ids); }
  torch::Tensor weight;
};

}  // namespace loupe::lm::layers

#endif  // LOUPE_WORKERS_LM_MODEL_LAYERS_H_
