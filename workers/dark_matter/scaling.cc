#include "workers/dark_matter/scaling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace loupe::dark_matter {

PairScaling PredictWiderErrorNorm(const torch::Tensor& error_norm_narrow, const torch::Tensor& nonlinear_norm_narrow,
                                  const torch::Tensor& error_norm_wide, const Split& split) {
  PairScaling s;
  torch::Tensor a = error_norm_narrow.to(torch::kFloat64).reshape({-1, 1});
  torch::Tensor b = nonlinear_norm_narrow.to(torch::kFloat64).reshape({-1, 1});
  torch::Tensor y = error_norm_wide.to(torch::kFloat64).reshape({-1});
  s.r2 = FitHeldOut(AppendOnes(a), y, split).r2;
  s.r2_with_nonlinear = FitHeldOut(AppendOnes(torch::cat({a, b}, 1)), y, split).r2;
  s.extra_variance_explained_pct = (s.r2_with_nonlinear - s.r2) / (1 - s.r2) * 100;
  return s;
}

double PowerLawFit::Predict(double width) const { return c + a * std::pow(width, m); }

namespace {

double Sse(double c, double a, double m, const std::vector<double>& w, const std::vector<double>& f) {
  double s = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double r = c + a * std::pow(w[i], m) - f[i];
    s += r * r;
  }
  return s;
}

// log(f − c) = log a + m log w by OLS; returns false if some f <= c.
bool LogFit(double c, const std::vector<double>& w, const std::vector<double>& f, double* a, double* m) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    if (f[i] - c <= 0) return false;
    const double x = std::log(w[i]), y = std::log(f[i] - c);
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double den = n * sxx - sx * sx;
  if (den == 0) return false;
  *m = (n * sxy - sx * sy) / den;
  *a = std::exp((sy - *m * sx) / n);
  return true;
}

}  // namespace

PowerLawFit FitPowerLaw(const std::vector<double>& widths, const std::vector<double>& fvus) {
  PowerLawFit fit;
  if (widths.size() != fvus.size() || std::set<double>(widths.begin(), widths.end()).size() < 3) return fit;
  // Profile over c on a grid below min FVU for a start, then Levenberg–
  // Marquardt on (c, log a, m) in the original (FVU) space.
  const double fmin = *std::min_element(fvus.begin(), fvus.end());
  double best = std::numeric_limits<double>::infinity();
  double c = 0, a = 0, m = 0;
  for (int g = 0; g <= 200; ++g) {
    const double cc = fmin * (g / 200.0) - (g == 200 ? 1e-9 : 0);
    double aa, mm;
    if (!LogFit(cc, widths, fvus, &aa, &mm)) continue;
    const double s = Sse(cc, aa, mm, widths, fvus);
    if (s < best) best = s, c = cc, a = aa, m = mm;
  }
  if (!std::isfinite(best)) return fit;
  double p[3] = {c, std::log(a), m};
  double lambda = 1e-3;
  auto sse_of = [&](const double* q) { return Sse(q[0], std::exp(q[1]), q[2], widths, fvus); };
  double cur = sse_of(p);
  for (int it = 0; it < 500; ++it) {
    // J^T J and J^T r for the residuals r_i = c + e^{la} w^m − f_i.
    double JtJ[3][3] = {}, Jtr[3] = {};
    for (size_t i = 0; i < widths.size(); ++i) {
      const double pw = std::exp(p[1]) * std::pow(widths[i], p[2]);
      const double r = p[0] + pw - fvus[i];
      const double J[3] = {1.0, pw, pw * std::log(widths[i])};
      for (int u = 0; u < 3; ++u) {
        Jtr[u] += J[u] * r;
        for (int v = 0; v < 3; ++v) JtJ[u][v] += J[u] * J[v];
      }
    }
    // Solve (JtJ + λ diag) δ = −Jtr by Cramer's rule (3×3).
    double A[3][3];
    for (int u = 0; u < 3; ++u)
      for (int v = 0; v < 3; ++v) A[u][v] = JtJ[u][v] + (u == v ? lambda * (JtJ[u][u] + 1e-30) : 0);
    auto det3 = [](double M[3][3]) {
      return M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
             M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    };
    const double D = det3(A);
    if (D == 0 || !std::isfinite(D)) break;
    double delta[3];
    for (int col = 0; col < 3; ++col) {
      double B[3][3];
      for (int u = 0; u < 3; ++u)
        for (int v = 0; v < 3; ++v) B[u][v] = v == col ? -Jtr[u] : A[u][v];
      delta[col] = det3(B) / D;
    }
    double q[3] = {p[0] + delta[0], p[1] + delta[1], p[2] + delta[2]};
    const double next = sse_of(q);
    if (std::isfinite(next) && next < cur) {
      const double gain = cur - next;
      std::copy(q, q + 3, p);
      cur = next;
      lambda = std::max(lambda / 3, 1e-12);
      if (gain < 1e-18) break;
    } else {
      lambda *= 4;
      if (lambda > 1e12) break;
    }
  }
  fit.c = p[0];
  fit.a = std::exp(p[1]);
  fit.m = p[2];
  fit.sse = cur;
  fit.ok = std::isfinite(cur) && fit.m < 0;
  return fit;
}

std::vector<FvuSplit> SplitFvu(const PowerLawFit& fit, const std::vector<double>& widths,
                               const std::vector<double>& fvus, const std::vector<double>& nonlinear_fvus) {
  const double mean_nonlinear =
      std::accumulate(nonlinear_fvus.begin(), nonlinear_fvus.end(), 0.0) / static_cast<double>(nonlinear_fvus.size());
  std::vector<FvuSplit> out;
  for (size_t i = 0; i < widths.size(); ++i) {
    FvuSplit s;
    s.width = widths[i];
    s.fvu = fvus[i];
    s.fitted_fvu = fit.Predict(widths[i]);
    s.absent_features = fvus[i] - fit.c;
    s.linear_error = fit.c - mean_nonlinear;
    s.nonlinear_error = mean_nonlinear;
    out.push_back(s);
  }
  return out;
}

}  // namespace loupe::dark_matter
