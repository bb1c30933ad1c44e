// Analysis 6: gradient pursuit at inference time (encoder_pursuit.py of
// "Decomposing the Dark Matter of Sparse Autoencoders"). Instead of the
// SAE's encoder, codes w >= 0 over the SAE's own decoder D = W_dec are
// chosen greedily, each token keeping the L0 the encoder gave it:
//   s = x − b_dec, w = 0; repeat max_t L0_t times:
//     r = s − w D;  ip = r Dᵀ;  support = {w ≠ 0} ∪ {argmax ip}
//     g = ip ⊙ support;  c = g D;  η = ⟨c, r⟩ / ⟨c, c⟩
//     w ← max(w + η g, 0)        — only tokens whose support is still
//                                  smaller than their L0 move; a token is
//                                  frozen once its target L0 is reached
//   reconstruction = w D + b_dec.
// RefineOnSupport is the fixed-support variant used to measure encoder
// error at equal sparsity: it starts from given codes (the encoder's) and
// takes gradient steps on their support only, with the step capped where a
// coordinate would cross zero, so each step is an exact line search on a
// convex quadratic restricted to the non-negative orthant: the
// reconstruction error never increases.
// Pure functions; thread-safe. Tensors stay on the inputs' device.
#ifndef LOUPE_WORKERS_DARK_MATTER_PURSUIT_H_
#define LOUPE_WORKERS_DARK_MATTER_PURSUIT_H_

#include <torch/torch.h>

#include <cstdint>

namespace loupe::dark_matter {

// x [n, d]; W_dec [d_sae, d]; b_dec [d]; target_l0 [n] int64.
// Returns codes w [n, d_sae] (>= 0, at most target_l0 non-zeros per row).
torch::Tensor GradientPursuit(const torch::Tensor& x, const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                              const torch::Tensor& target_l0, int64_t batch_size = 256);

// codes [n, d_sae] >= 0: the start. `iterations` projected steps on the
// support {codes ≠ 0}.
torch::Tensor RefineOnSupport(const torch::Tensor& x, const torch::Tensor& W_dec, const torch::Tensor& b_dec,
                              const torch::Tensor& codes, int64_t iterations);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_PURSUIT_H_
