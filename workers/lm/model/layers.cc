#include "workers/lm/model/layers.h"

namespace loupe::lm::layers {

Linear::Linear(int64_t in, int64_t out, bool has_bias, const torch::TensorOptions& opts) {
  weight = register_parameter("weight", torch::empty({out, in}, opts));
  if (has_bias) bias = register_parameter("bias", torch::empty({out}, opts));
}

Conv1D::Conv1D(int64_t in, int64_t out, const torch::TensorOptions& opts) {
  weight = register_parameter("weight", torch::empty({in, out}, opts));
  bias = register_parameter("bias", torch::empty({out}, opts));
}

LayerNorm::LayerNorm(int64_t d, double eps_, const torch::TensorOptions& opts) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({d}, opts));
  bias = register_parameter("bias", torch::empty({d}, opts));
}

torch::Tensor LayerNorm::operator()(const torch::Tensor& x) const {
  return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

RmsNorm::RmsNorm(int64_t d, double eps_, const torch::TensorOptions& opts) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({d}, opts));
}

torch::Tensor RmsNorm::operator()(const torch::Tensor& x) const {
  // In float32 whatever the model dtype: a bf16 mean of squares over
  // thousands of features loses the precision the normalisation needs.
  torch::Tensor xf = x.to(torch::kFloat);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * xf.to(x.scalar_type());
}

Embedding::Embedding(int64_t n, int64_t d, const torch::TensorOptions& opts) {
  weight = register_parameter("weight", torch::empty({n, d}, opts));
}

}  // namespace loupe::lm::layers
