#include "workers/dark_matter/decomposition.h"

#include <limits>
#include <unordered_map>
#include <vector>

namespace loupe::dark_matter {

torch::Tensor SquaredNorms(const torch::Tensor& rows) { return rows.to(torch::kFloat64).pow(2).sum(1); }

Decomposition Decompose(const torch::Tensor& x, const torch::Tensor& x_hat, const Split& split) {
  Decomposition d;
  d.error = x - x_hat;
  torch::Tensor train = split.train.to(x.device());
  d.W = LeastSquares(x.index_select(0, train), d.error.index_select(0, train));
  d.linear = x.matmul(d.W);
  d.nonlinear = d.error - d.linear;
  return d;
}

namespace {
double TotalVariance(const torch::Tensor& x) {
  torch::Tensor xd = x.to(torch::kFloat64);
  return (xd - xd.mean(0, true)).pow(2).sum().item<double>();
}
}  // namespace

double ResidualFvu(const torch::Tensor& x, const torch::Tensor& residual) {
  const double total = TotalVariance(x);
  if (total <= 0) return std::numeric_limits<double>::quiet_NaN();
  return residual.to(torch::kFloat64).pow(2).sum().item<double>() / total;
}

double Fvu(const torch::Tensor& x, const torch::Tensor& x_hat) { return ResidualFvu(x, x - x_hat); }

double NormalizedMse(const torch::Tensor& x, const torch::Tensor& x_hat) {
  return (SquaredNorms(x - x_hat) / SquaredNorms(x)).mean().item<double>();
}

DecompositionStats DecompositionStatistics(const torch::Tensor& x, const torch::Tensor& x_hat,
                                           const torch::Tensor& l0, const Decomposition& dec,
                                           const Split& split) {
  DecompositionStats s;
  torch::Tensor test = split.test.to(x.device());
  torch::Tensor xt = x.index_select(0, test);
  torch::Tensor xht = x_hat.index_select(0, test);
  torch::Tensor et = dec.error.index_select(0, test);
  torch::Tensor lt = dec.linear.index_select(0, test);
  torch::Tensor nt = dec.nonlinear.index_select(0, test);
  s.fvu = Fvu(xt, xht);
  s.normalized_mse = NormalizedMse(xt, xht);
  s.l0 = l0.index_select(0, split.test.to(l0.device())).to(torch::kFloat64).mean().item<double>();
  // W* itself is the fit of e on x over the training rows.
  s.linear_error_r2 = R2PerDimensionMean(et, lt);
  s.error_norm_r2 = FitHeldOut(x, SquaredNorms(dec.error), split).r2;
  s.xhat_norm_r2 = FitHeldOut(x, SquaredNorms(x_hat), split).r2;
  s.linear_norm_r2 = FitHeldOut(x, SquaredNorms(dec.linear), split).r2;
  s.nonlinear_norm_r2 = FitHeldOut(x, SquaredNorms(dec.nonlinear), split).r2;
  s.linear_fvu = ResidualFvu(xt, lt);
  s.nonlinear_fvu = ResidualFvu(xt, nt);
  const double e2 = SquaredNorms(et).sum().item<double>();
  s.linear_norm_share = SquaredNorms(lt).sum().item<double>() / e2;
  s.nonlinear_norm_share = SquaredNorms(nt).sum().item<double>() / e2;
  s.max_identity_error = (x - (x_hat + dec.linear + dec.nonlinear)).abs().max().item<double>();
  return s;
}

NormBaselines ErrorNormBaselines(const torch::Tensor& x, const torch::Tensor& error, const torch::Tensor& l0,
                                 const torch::Tensor& token_ids, const Split& split) {
  NormBaselines b;
  torch::Tensor target = SquaredNorms(error);
  b.from_x = FitHeldOut(AppendOnes(x), target, split).r2;
  b.from_x_norm = FitHeldOut(AppendOnes(SquaredNorms(x).sqrt()), target, split).r2;
  b.from_l0 = FitHeldOut(AppendOnes(l0.to(x.device()).to(torch::kFloat64)), target, split).r2;
  b.token_id_mean = std::numeric_limits<double>::quiet_NaN();
  b.token_ids_seen = std::numeric_limits<double>::quiet_NaN();
  if (token_ids.defined() && token_ids.numel() == x.size(0)) {
    torch::Tensor ids = token_ids.to(torch::kCPU, torch::kInt64).contiguous();
    torch::Tensor t = target.to(torch::kCPU).contiguous();
    const int64_t* id = ids.data_ptr<int64_t>();
    const double* v = t.data_ptr<double>();
    torch::Tensor train = split.train.contiguous(), test = split.test.contiguous();
    std::unordered_map<int64_t, std::pair<double, int64_t>> sums;
    double total = 0;
    for (int64_t i = 0; i < train.numel(); ++i) {
      const int64_t r = train.data_ptr<int64_t>()[i];
      auto& s = sums[id[r]];
      s.first += v[r];
      s.second += 1;
      total += v[r];
    }
    const double train_mean = train.numel() > 0 ? total / static_cast<double>(train.numel()) : 0;
    std::vector<double> pred(static_cast<size_t>(test.numel()));
    int64_t seen = 0;
    for (int64_t i = 0; i < test.numel(); ++i) {
      const int64_t r = test.data_ptr<int64_t>()[i];
      auto it = sums.find(id[r]);
      if (it != sums.end()) ++seen;
      pred[static_cast<size_t>(i)] = it != sums.end() ? it->second.first / static_cast<double>(it->second.second) : train_mean;
    }
    b.token_id_mean = R2PerDimensionMean(t.index_select(0, test), torch::tensor(pred, torch::kFloat64));
    b.token_ids_seen = test.numel() > 0 ? static_cast<double>(seen) / static_cast<double>(test.numel()) : 0;
  }
  return b;
}

}  // namespace loupe::dark_matter
