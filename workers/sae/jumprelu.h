// JumpReLU's activation and step function with the straight-through
// estimators of Rajamanoharan et al. 2024 ("Jumping Ahead: Improving
// Reconstruction Fidelity with JumpReLU Sparse Autoencoders"):
//   JumpReLU(pre; t) = pre * H(pre - t)         H: Heaviside step
//   d/dpre = H(pre - t)
//   d/dt   = -(t / eps) K((pre - t) / eps)      pseudo-derivative
//   Step(pre; t) = H(pre - t)                   (the L0 count)
//   d/dpre = 0,  d/dt = -(1 / eps) K((pre - t) / eps)
// with the rectangle kernel K(u) = 1 for |u| < 1/2, else 0, and eps the
// bandwidth. `pre` is [n, d_sae], `threshold` [d_sae] (broadcast over rows);
// the threshold's gradient is summed over rows. Pure functions; thread-safe.
//
// The pseudo-derivatives are the exact derivatives of kernel-smoothed
// functions (what the tests check numerically):
//   Step_eps(pre; t)     = clamp((pre - t) / eps + 1/2, 0, 1)
//   JumpReLU_eps(pre; t) = pre                                t <= pre - eps/2
//                          pre - (t^2 - (pre - eps/2)^2) / (2 eps)   inside
//                          0                                  t >= pre + eps/2
#ifndef LOUPE_WORKERS_SAE_JUMPRELU_H_
#define LOUPE_WORKERS_SAE_JUMPRELU_H_

#include <torch/torch.h>

namespace loupe::sae {

torch::Tensor JumpRelu(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth);
torch::Tensor JumpReluStep(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth);

// The smoothed forms above (for tests and diagnostics; ordinary autograd).
torch::Tensor SmoothedJumpRelu(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth);
torch::Tensor SmoothedStep(const torch::Tensor& pre, const torch::Tensor& threshold, double bandwidth);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_JUMPRELU_H_
