// Least squares and held-out R², as "Decomposing the Dark Matter of Sparse
// Autoencoders" (Engels et al.) computes them (utils.run_lstsq):
//   - ordinary least squares with no ridge term; an intercept only when the
//     caller appends a column of ones (AppendOnes);
//   - rows randomly permuted once, fit on a training part, every R² measured
//     on the held-out rest;
//   - R² per output dimension, each dimension centred by its own held-out
//     mean, then averaged over dimensions (sklearn's "uniform_average").
// Solved in float64 on the inputs' device; results come back as float32.
// Pure functions; thread-safe.
#ifndef LOUPE_WORKERS_DARK_MATTER_REGRESSION_H_
#define LOUPE_WORKERS_DARK_MATTER_REGRESSION_H_

#include <torch/torch.h>

#include <cstdint>

namespace loupe::dark_matter {

// Row indices of a random permutation of [0, n): the first
// round(train_fraction * n) are `train`, the rest `test` (int64, CPU).
struct Split {
  torch::Tensor train;
  torch::Tensor test;
};
Split RandomSplit(int64_t n, double train_fraction, uint64_t seed);

// argmin_W ||X W - Y||² for X [n, p], Y [n, k] (or [n], treated as [n, 1]);
// returns W [p, k] float32. Rank-deficient X gets the minimum-norm solution
// (SVD-based, singular values below 1e-9·max treated as zero, as rcond=1e-9
// in the paper's code).
torch::Tensor LeastSquares(const torch::Tensor& X, const torch::Tensor& Y);

// X with a trailing column of ones ([n, p] or [n] → [n, p + 1]).
torch::Tensor AppendOnes(const torch::Tensor& X);

// mean_j (1 − Σ_i (y_ij − ŷ_ij)² / Σ_i (y_ij − ȳ_j)²) over the dimensions j
// whose held-out variance is non-zero (a constant dimension has no R²);
// NaN if there is none. y, y_pred: [n, k] or [n].
double R2PerDimensionMean(const torch::Tensor& y, const torch::Tensor& y_pred);

// Fits Y on X over split.train and returns the held-out R² on split.test.
struct HeldOutFit {
  torch::Tensor W;   // [p, k]
  double r2 = 0;     // R2PerDimensionMean on the test rows
};
HeldOutFit FitHeldOut(const torch::Tensor& X, const torch::Tensor& Y, const Split& split);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_REGRESSION_H_
