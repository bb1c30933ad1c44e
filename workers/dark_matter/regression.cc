#include "workers/dark_matter/regression.h"

#include <cmath>
#include <limits>

namespace loupe::dark_matter {

Split RandomSplit(int64_t n, double train_fraction, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor perm = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64));
  int64_t n_train = static_cast<int64_t>(std::llround(train_fraction * static_cast<double>(n)));
  n_train = std::max<int64_t>(0, std::min(n, n_train));
  return {perm.slice(0, 0, n_train), perm.slice(0, n_train, n)};
}

namespace {
torch::Tensor AsMatrix(const torch::Tensor& t) { return t.dim() == 1 ? t.unsqueeze(1) : t; }
}  // namespace

torch::Tensor LeastSquares(const torch::Tensor& X, const torch::Tensor& Y) {
  torch::Tensor x = AsMatrix(X).to(torch::kFloat64);
  torch::Tensor y = AsMatrix(Y).to(torch::kFloat64).to(x.device());
  // The pseudo-inverse via an SVD of X (p is small: d_model columns) is the
  // minimum-norm solution for any rank, and runs on any device, where
  // linalg_lstsq's drivers differ between CPU and CUDA.
  auto [U, S, Vh] = torch::linalg_svd(x, /*full_matrices=*/false);
  const double cutoff = 1e-9 * (S.numel() > 0 ? S.max().item<double>() : 0.0);
  torch::Tensor inv = torch::where(S > cutoff, 1.0 / S, torch::zeros_like(S));
  torch::Tensor W = Vh.transpose(0, 1).matmul(inv.unsqueeze(1) * U.transpose(0, 1).matmul(y));
  return W.to(torch::kFloat32);
}

torch::Tensor AppendOnes(const torch::Tensor& X) {
  torch::Tensor x = AsMatrix(X);
  return torch::cat({x, torch::ones({x.size(0), 1}, x.options())}, 1);
}

double R2PerDimensionMean(const torch::Tensor& y, const torch::Tensor& y_pred) {
  torch::Tensor a = AsMatrix(y).to(torch::kFloat64);
  torch::Tensor b = AsMatrix(y_pred).to(torch::kFloat64).to(a.device());
  torch::Tensor ss_res = (a - b).pow(2).sum(0);
  torch::Tensor ss_tot = (a - a.mean(0, /*keepdim=*/true)).pow(2).sum(0);
  torch::Tensor valid = ss_tot > 0;
  if (valid.sum().item<int64_t>() == 0) return std::numeric_limits<double>::quiet_NaN();
  torch::Tensor r2 = 1.0 - ss_res.masked_select(valid) / ss_tot.masked_select(valid);
  return r2.mean().item<double>();
}

HeldOutFit FitHeldOut(const torch::Tensor& X, const torch::Tensor& Y, const Split& split) {
  torch::Tensor train = split.train.to(X.device());
  torch::Tensor test = split.test.to(X.device());
  HeldOutFit fit;
  fit.W = LeastSquares(X.index_select(0, train), Y.index_select(0, train));
  torch::Tensor pred = AsMatrix(X.index_select(0, test)).to(torch::kFloat64).matmul(fit.W.to(torch::kFloat64));
  fit.r2 = R2PerDimensionMean(Y.index_select(0, test), pred);
  return fit;
}

}  // namespace loupe::dark_matter
