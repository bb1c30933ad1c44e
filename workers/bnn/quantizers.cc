#include "workers/bnn/quantizers.h"

#include <cmath>

namespace loupe::bnn {
namespace {

// Forward value `q`, gradient of `x` where `mask` is true and 0 elsewhere.
torch::Tensor StraightThrough(const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& mask) {
  if (!x.requires_grad()) return q;
  const torch::Tensor passed = x * mask.to(x.scalar_type());
  return q.detach() + (passed - passed.detach());
}

torch::Tensor PerChannelMaxAbs(const torch::Tensor& w) {
  return w.detach().abs().reshape({w.size(0), -1}).amax(1);
}

// Broadcasts a per-dim-0 vector against `like`.
torch::Tensor AlongDim0(const torch::Tensor& v, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = like.size(0);
  return v.reshape(shape);
}

}  // namespace

torch::Tensor BinarizeActivation(const torch::Tensor& x, double clip_bound) {
  const double half = clip_bound / 2.0;
  const torch::Tensor q = torch::where(x.detach() >= 0, torch::full({}, half, x.options()),
                                       torch::full({}, -half, x.options()));
  const double limit = clip_bound * (1.0 - std::ldexp(1.0, -7));
  return StraightThrough(x, q, x.detach().abs() < limit);
}

torch::Tensor BinaryWeightScale(const torch::Tensor& w) { return PerChannelMaxAbs(w) / 2.0; }

torch::Tensor BinarizeWeight(const torch::Tensor& w) {
  const torch::Tensor scale = AlongDim0(BinaryWeightScale(w), w);
  const torch::Tensor q = torch::where(w.detach() >= 0, scale, -scale);
  return StraightThrough(w, q, torch::ones_like(w, torch::kBool));
}

torch::Tensor QuantizeWeight(const torch::Tensor& w, int bits) {
  const double levels = std::ldexp(1.0, bits - 1) - 1.0;
  const torch::Tensor bound = AlongDim0(PerChannelMaxAbs(w).clamp_min(1e-12), w);
  const torch::Tensor step = bound / levels;
  const torch::Tensor q = torch::round(w.detach() / step).clamp(-levels, levels) * step;
  return StraightThrough(w, q, torch::ones_like(w, torch::kBool));
}

torch::Tensor QuantizeActivation(const torch::Tensor& x, int bits, bool is_unsigned) {
  const double levels = is_unsigned ? std::ldexp(1.0, bits) - 1.0 : std::ldexp(1.0, bits - 1) - 1.0;
  const torch::Tensor bound = AlongDim0(PerChannelMaxAbs(x).clamp_min(1e-8), x);
  const torch::Tensor step = bound / levels;
  const double lo = is_unsigned ? 0.0 : -levels;
  const torch::Tensor q = torch::round(x.detach() / step).clamp(lo, levels) * step;
  const torch::Tensor inside = is_unsigned ? (x.detach() >= 0) : torch::ones_like(x, torch::kBool);
  return StraightThrough(x, q, inside);
}

}  // namespace loupe::bnn
