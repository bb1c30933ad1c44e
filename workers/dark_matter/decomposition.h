// Analysis 1 of "Decomposing the Dark Matter of Sparse Autoencoders": the
// SAE error e = x − x̂ split into a part linearly predictable from x and the
// rest,
//   W*            = argmin_W Σ_train ||x W − e||²   (OLS, no intercept)
//   linear error  = x W*
//   nonlinear err = e − x W*
// so that x = x̂ + linear + nonlinear holds exactly (up to float rounding)
// on every row; W* is fit on the training rows only and applied to all
// (the paper's simple_circuits.py; its sign convention stores x̂ − x, we use
// e = x − x̂ so the parts add up to x).
//
// Every R² is held-out (test rows) and averaged per output dimension
// (regression.h).
// Pure functions; thread-safe.
#ifndef LOUPE_WORKERS_DARK_MATTER_DECOMPOSITION_H_
#define LOUPE_WORKERS_DARK_MATTER_DECOMPOSITION_H_

#include <torch/torch.h>

#include <map>
#include <string>

#include "workers/dark_matter/regression.h"

namespace loupe::dark_matter {

struct Decomposition {
  torch::Tensor W;          // W* [d, d]
  torch::Tensor error;      // e = x − x̂ [n, d]
  torch::Tensor linear;     // x W*
  torch::Tensor nonlinear;  // e − x W*
};

Decomposition Decompose(const torch::Tensor& x, const torch::Tensor& x_hat, const Split& split);

// Σ||x − x̂||² / Σ||x − mean(x)||² over the rows (the mean of these rows).
double Fvu(const torch::Tensor& x, const torch::Tensor& x_hat);
// Σ||r||² / Σ||x − mean(x)||²: the FVU a residual r would leave.
double ResidualFvu(const torch::Tensor& x, const torch::Tensor& residual);
// mean_t ||x − x̂||² / ||x||² (utils.normalized_mse).
double NormalizedMse(const torch::Tensor& x, const torch::Tensor& x_hat);

// Held-out statistics of one SAE's decomposition (all on split.test).
struct DecompositionStats {
  double fvu = 0;                // FVU of x̂
  double normalized_mse = 0;
  double l0 = 0;                 // mean count of non-zero codes
  double linear_error_r2 = 0;    // R² of predicting e from x (per dimension)
  double error_norm_r2 = 0;      // R² of predicting ||e||² from x, no intercept
  double xhat_norm_r2 = 0;       // ... of ||x̂||²
  double linear_norm_r2 = 0;     // ... of ||x W*||²
  double nonlinear_norm_r2 = 0;  // ... of ||e − x W*||²
  double linear_fvu = 0;         // Σ||x W*||² / Σ||x − mean||²
  double nonlinear_fvu = 0;      // Σ||e − x W*||² / Σ||x − mean||² (= FVU of x̂ + x W*)
  double linear_norm_share = 0;  // Σ||x W*||² / Σ||e||²
  double nonlinear_norm_share = 0;
  double max_identity_error = 0; // max |x − (x̂ + linear + nonlinear)| over all rows
};

// x, x_hat: [n, d]; l0: [n] per-row L0 of the SAE.
DecompositionStats DecompositionStatistics(const torch::Tensor& x, const torch::Tensor& x_hat,
                                           const torch::Tensor& l0, const Decomposition& dec,
                                           const Split& split);

// Fig 13 of the paper: how well simple per-token quantities predict ||e||²
// on held-out rows, each by OLS with an intercept, beside x itself.
struct NormBaselines {
  double from_x = 0;            // [x, 1]
  double from_x_norm = 0;       // [||x||, 1]
  double from_l0 = 0;           // [L0, 1]
  double token_id_mean = 0;     // mean ||e||² of the token id over the training rows
                                // (ids unseen in training: the training mean); NaN without ids
  double token_ids_seen = 0;    // share of test rows whose id occurs in training
};
NormBaselines ErrorNormBaselines(const torch::Tensor& x, const torch::Tensor& error, const torch::Tensor& l0,
                                 const torch::Tensor& token_ids, const Split& split);

// A column of squared row norms [n].
torch::Tensor SquaredNorms(const torch::Tensor& rows);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_DECOMPOSITION_H_
