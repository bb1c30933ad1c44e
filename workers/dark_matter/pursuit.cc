#include "workers/dark_matter/pursuit.h"

#include <algorithm>

namespace loupe::dark_matter {

namespace {

torch::Tensor PursuitBatch(const torch::Tensor& s, const torch::Tensor& D, const torch::Tensor& target_l0) {
  torch::Tensor w = torch::zeros({s.size(0), D.size(0)}, s.options());
  const int64_t rounds = target_l0.numel() > 0 ? target_l0.max().item<int64_t>() : 0;
  torch::Tensor rows = torch::arange(s.size(0), target_l0.options());
  for (int64_t t = 0; t < rounds; ++t) {
    torch::Tensor active = (w != 0).sum(1) < target_l0;  // not yet frozen
    if (!active.any().item<bool>()) break;
    torch::Tensor r = s - w.matmul(D);
    torch::Tensor ip = r.matmul(D.t());
    torch::Tensor support = (w != 0);
    support.index_put_({rows, ip.argmax(1)}, true);
    torch::Tensor g = ip * support.to(ip.dtype());
    torch::Tensor c = g.matmul(D);
    torch::Tensor cc = (c * c).sum(1, true);
    torch::Tensor eta = torch::where(cc > 0, (c * r).sum(1, true) / cc, torch::zeros_like(cc));
    torch::Tensor next = torch::clamp_min(w + eta * g, 0);
    w = torch::where(active.unsqueeze(1), next, w);
  }
  return w;
}

}  // namespace

torch::Tensor GradientPursuit(const torch::Tensor& x, const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                              const torch::Tensor& target_l0, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  torch::Tensor l0 = target_l0.to(x.device(), torch::kInt64);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += batch_size) {
    parts.push_back(PursuitBatch(x.slice(0, i, i + batch_size) - b_dec, W_dec, l0.slice(0, i, i + batch_size)));
  }
  return parts.empty() ? torch::zeros({0, W_dec.size(0)}, x.options()) : torch::cat(parts, 0);
}

torch::Tensor RefineOnSupport(const torch::Tensor& x, const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                              const torch::Tensor& codes, int64_t iterations) {
  torch::NoGradGuard no_grad;
  torch::Tensor s = (x - b_dec).to(torch::kFloat64);
  torch::Tensor D = W_dec.to(torch::kFloat64);
  torch::Tensor w = codes.to(torch::kFloat64).clone();
  torch::Tensor support = (w > 0).to(torch::kFloat64);
  for (int64_t t = 0; t < iterations; ++t) {
    torch::Tensor r = s - w.matmul(D);
    // A coordinate at 0 that the gradient would push negative stays put
    // (the projection would undo the move anyway).
    torch::Tensor g = r.matmul(D.t()) * support;
    g = g * ((w > 0) | (g > 0)).to(g.dtype());
    torch::Tensor c = g.matmul(D);
    torch::Tensor cc = (c * c).sum(1, true);
    torch::Tensor eta = torch::where(cc > 0, (c * r).sum(1, true) / cc, torch::zeros_like(cc));
    // Largest step keeping every coordinate >= 0: min over g < 0 of w / −g.
    torch::Tensor limit = torch::where(g < 0, w / (-g), torch::full_like(w, 1e300)).amin(1, true);
    eta = torch::minimum(eta, limit);
    w = torch::clamp_min(w + eta * g, 0) * support;
  }
  return w.to(codes.dtype());
}

}  // namespace loupe::dark_matter
