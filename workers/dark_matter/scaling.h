// Analyses 2 and 3 of "Decomposing the Dark Matter of Sparse Autoencoders":
// how SAE error behaves as the dictionary grows.
// Pure functions; thread-safe.
#ifndef LOUPE_WORKERS_DARK_MATTER_SCALING_H_
#define LOUPE_WORKERS_DARK_MATTER_SCALING_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "workers/dark_matter/regression.h"

namespace loupe::dark_matter {

// Per-token scaling (sae_power_laws_per_token.py): for a narrower SAE i and
// a wider SAE j on the same tokens,
//   r2       = R² of ||e_j|| ~ [||e_i||, 1]          (norms, not squared)
//   r2_with  = R² of ||e_j|| ~ [||e_i||, ||nonlinear_i||, 1]
//   extra_variance_explained_pct = (r2_with − r2) / (1 − r2) · 100
// Fit on split.train, R² on split.test (the paper reports in-sample R²;
// with two or three regressors and thousands of rows the two agree).
struct PairScaling {
  double r2 = 0;
  double r2_with_nonlinear = 0;
  double extra_variance_explained_pct = 0;
};
PairScaling PredictWiderErrorNorm(const torch::Tensor& error_norm_narrow, const torch::Tensor& nonlinear_norm_narrow,
                                  const torch::Tensor& error_norm_wide, const Split& split);

// FVU(W) = c + a·W^m fit to (width, FVU) points by least squares in FVU
// (the paper fits the same curve with Adam; we minimise the same squared
// error with Levenberg–Marquardt from a log-space start, which is
// deterministic). Needs >= 3 points with distinct widths; with exactly 3 the
// curve interpolates them (no residual degrees of freedom).
struct PowerLawFit {
  double c = 0, a = 0, m = 0;
  double sse = 0;   // Σ (fit − FVU)²
  bool ok = false;  // false: fewer than 3 distinct widths, or no decreasing fit
  double Predict(double width) const;
};
PowerLawFit FitPowerLaw(const std::vector<double>& widths, const std::vector<double>& fvus);

// Fig 1's regions at one width, from the fit and the mean over widths of the
// nonlinear FVU (FVU of x̂ + x W*, which the paper finds roughly flat):
//   nonlinear_error = mean nonlinear FVU
//   linear_error    = c − mean nonlinear FVU        (between c and that mean)
//   absent_features = FVU(W) − c                    (what more latents would still explain)
struct FvuSplit {
  double width = 0;
  double fvu = 0;
  double fitted_fvu = 0;
  double absent_features = 0;
  double linear_error = 0;
  double nonlinear_error = 0;
};
std::vector<FvuSplit> SplitFvu(const PowerLawFit& fit, const std::vector<double>& widths,
                               const std::vector<double>& fvus, const std::vector<double>& nonlinear_fvus);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_SCALING_H_
