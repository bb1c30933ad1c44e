// Geometric median of a point cloud: argmin_y sum_i ||x_i - y||, by
// Weiszfeld's iteration. Used to initialise an SAE's decoder bias from data
// (as in OpenAI's TopK recipe): unlike the mean it ignores a few outliers.
// Pure function; thread-safe.
#ifndef LOUPE_WORKERS_SAE_GEOMETRIC_MEDIAN_H_
#define LOUPE_WORKERS_SAE_GEOMETRIC_MEDIAN_H_

#include <torch/torch.h>

namespace loupe::sae {

// `points`: [n, d], n >= 1. Returns [d] in the points' dtype and device.
// Iterates from the mean until a step moves less than `tolerance` times the
// cloud's RMS radius, or `max_iterations` steps. Computes in float64.
torch::Tensor GeometricMedian(const torch::Tensor& points, int max_iterations = 200,
                              double tolerance = 1e-7);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_GEOMETRIC_MEDIAN_H_
