#include "workers/sae/geometric_median.h"

namespace loupe::sae {

torch::Tensor GeometricMedian(const torch::Tensor& points, int max_iterations, double tolerance) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(points.dim() == 2 && points.size(0) >= 1, "GeometricMedian needs [n, d] points, n >= 1");
  const torch::Tensor x = points.to(torch::kDouble);
  torch::Tensor y = x.mean(0);
  const double radius = (x - y).pow(2).sum(1).mean().sqrt().item<double>();
  if (radius == 0.0) return y.to(points.scalar_type());  // all points equal
  const double step_limit = tolerance * radius;
  // Weiszfeld's weights 1/||x_i - y|| blow up when y lands on a data point;
  // flooring the distance keeps the step defined and still converges there.
  const double floor = 1e-12 * radius;
  for (int it = 0; it < max_iterations; ++it) {
    torch::Tensor w = 1.0 / (x - y).norm(2, 1).clamp_min(floor);
    torch::Tensor next = (w.unsqueeze(1) * x).sum(0) / w.sum();
    const double moved = (next - y).norm().item<double>();
    y = next;
    if (moved <= step_limit) break;
  }
  return y.to(points.scalar_type());
}

}  // namespace loupe::sae
