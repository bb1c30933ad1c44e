// GatheredLinear: chosen entries of y = b + x W^T (torch::nn::Linear's
// layout: W [m, d], one row per output), differentiable in b, x and W, with
// a backward pass that touches only those entries.
//
// Why: a TopK or BatchTopK SAE keeps k of d_sae pre-activations per row, so
// only n·k entries of pre = b_enc + (x - b_dec) W_enc reach the loss. With
// plain autograd the backward pass would build a dense [n, d_sae] gradient
// and run two dense matmuls with it (x^T dpre for W_enc, dpre W_enc^T for x);
// here the caller computes `pre` without autograd (one dense matmul, the
// step's only one), picks the entries, and the gradients come from the
// picked entries alone: O(n·k·d) work, no [n, d_sae] temporary.
//
// Stateless; thread-compatible.
#ifndef LOUPE_WORKERS_SAE_GATHERED_LINEAR_H_
#define LOUPE_WORKERS_SAE_GATHERED_LINEAR_H_

#include <torch/torch.h>

namespace loupe::sae {

// pre [n, m] = bias [m] + x [n, d] · weight [m, d]^T, already computed (no
// autograd history needed); rows, cols [t] int64 with rows ascending;
// weight contiguous. Returns pre[rows[i], cols[i]] [t], whose gradients flow
// to bias, x and weight as those of the same entries of
// torch::addmm(bias, x, weight.t()).
torch::Tensor GatheredLinear(const torch::Tensor& pre, const torch::Tensor& bias, const torch::Tensor& x,
                             const torch::Tensor& weight, const torch::Tensor& rows, const torch::Tensor& cols);

// For each of n rows, sum over the t entries with rows[i] == row of
// values[i] * table[cols[i]] ([n, table.size(1)]; rows ascending): a decoder
// on the active latents only, with no [t, d] temporary forward or backward.
// Differentiable in table and values.
torch::Tensor SumRowsOfTable(const torch::Tensor& table, const torch::Tensor& rows, const torch::Tensor& cols,
                             const torch::Tensor& values, int64_t n);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_GATHERED_LINEAR_H_
