// Fake quantizers with straight-through gradients (LibTorch), after AQT as
// used by PokeBNN. Stateless functions; tensors stay on their device.
#ifndef LOUPE_WORKERS_BNN_QUANTIZERS_H_
#define LOUPE_WORKERS_BNN_QUANTIZERS_H_

#include <torch/torch.h>

namespace loupe::bnn {

// AQT's prec=1, half_shift binarizer with clip bound B:
// forward  q = B·(floor(clip(x/B, ±(1−2⁻⁷))) + 0.5) = +B/2 if x ≥ 0 else −B/2;
// backward 1 where |x| < B(1−2⁻⁷), 0 outside (the clip).
torch::Tensor BinarizeActivation(const torch::Tensor& x, double clip_bound);

// Per-output-channel (dim 0) weight binarization: ±max|w|/2, the sign taken
// as w ≥ 0 → +. The scale is the channel's max|w| (no gradient through it);
// the gradient passes straight through to every weight.
torch::Tensor BinarizeWeight(const torch::Tensor& w);
// The per-output-channel scale max|w|/2 that BinarizeWeight multiplies the
// signs by: shape [out_channels].
torch::Tensor BinaryWeightScale(const torch::Tensor& w);

// Symmetric signed `bits`-bit quantization of weights, bound max|w| per
// output channel: levels k·B/(2^(bits−1)−1), |k| ≤ 2^(bits−1)−1.
torch::Tensor QuantizeWeight(const torch::Tensor& w, int bits);

// Activation quantization with a per-sample bound max|x| over all dims but
// the first (so a sample's result does not depend on its batch). Signed uses
// 2^(bits−1)−1 levels each side; unsigned (inputs ≥ 0, e.g. after ReLU) uses
// 2^bits−1 levels on [0, B]. Straight-through gradient inside the bound.
torch::Tensor QuantizeActivation(const torch::Tensor& x, int bits, bool is_unsigned);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_QUANTIZERS_H_
