// TREX, retraining methods (LOO, SubSample), similarity and random
// baselines, and the method dispatcher.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/gbdt/explain.h"
#include "workers/gbdt/parallel.h"

namespace loupe::gbdt {
namespace {


double TrainMean(const Table& t) {
  return std::accumulate(t.y.begin(), t.y.end(), 0.0) / static_cast<double>(std::max<int64_t>(1, t.rows));
}

// Test losses of a model retrained on `rows` of the training data.
absl::StatusOr<std::vector<double>> RetrainedTestLosses(const ExplainInput& in, const std::vector<int64_t>& rows) {
  TrainOptions o = in.retrain;
  o.threads = 1;
  absl::StatusOr<std::unique_ptr<Booster>> b = Booster::Train(in.train->Select(rows), o);
  if (!b.ok()) return b.status();
  absl::StatusOr<std::vector<double>> margins = (*b)->PredictMargin(*in.test);
  if (!margins.ok()) return margins.status();
  return RowLosses(in.model->loss, *margins, in.test->y);
}

struct StopFlag {
  std::atomic<bool> stop{false};
  absl::Status status;
  void Set(absl::Status s) {
    if (!stop.exchange(true)) status = std::move(s);
  }
};

}  // namespace

const std::vector<std::string>& MethodNames() {
  static const auto* names = new std::vector<std::string>{
      "boostin", "trex", "leaf_influence", "leaf_influence_sp", "leaf_refit", "loo",
      "subsample", "leaf_sim", "input_sim", "target", "random"};
  return *names;
}

std::vector<double> RowLosses(const Loss& loss, const std::vector<double>& margins, const std::vector<double>& y) {
  std::vector<double> out(y.size());
  for (size_t e = 0; e < y.size(); ++e) out[e] = loss.Value(&margins[e * static_cast<size_t>(loss.num_class)], y[e]);
  return out;
}

double LabelAgreement(const Ensemble& model, double y_train, double y_test, double train_mean) {
  if (model.loss.objective == Objective::kSquaredError) {
    return (y_train >= train_mean) == (y_test >= train_mean) ? 1.0 : -1.0;
  }
  return y_train == y_test ? 1.0 : -1.0;
}

absl::StatusOr<InfluenceMatrix> Trex(const ExplainInput& in) {
  const Ensemble& m = *in.model;
  const RowsPass train = ReplayRows(m, *in.train, in.threads);
  const RowsPass test = ReplayRows(m, *in.test, in.threads);
  const LeafStats stats = ComputeLeafStats(m, train);
  const LeafMembers members = ComputeLeafMembers(stats, train);
  const int K = m.K();
  const int64_t n = train.n, trees = m.rounds * K, L = stats.total_leaves();
  const double lambda = in.trex_lambda;
  // Kernel "lpw": one feature per leaf of every tree, 1/count at the leaf a
  // row reaches. The surrogate f(x) = φ(x)·W minimises mean loss + λ‖W‖².
  std::vector<double> W(static_cast<size_t>(L * K), 0.0), grad(W.size()), trial(W.size());
  auto forward = [&](const std::vector<double>& w, const RowsPass& rows, int64_t i, double* f) {
    for (int c = 0; c < K; ++c) f[c] = 0;
    for (int64_t tr = 0; tr < trees; ++tr) {
      const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + rows.Leaf(tr, i));
      for (int c = 0; c < K; ++c) f[c] += w[flat * K + c] / stats.count[flat];
    }
  };
  std::vector<double> dloss(static_cast<size_t>(n * K));
  auto objective = [&](const std::vector<double>& w, bool with_grad) {
    double total = 0;
    std::vector<double> f(static_cast<size_t>(K)), g(static_cast<size_t>(K)), h(static_cast<size_t>(K));
    for (int64_t i = 0; i < n; ++i) {
      forward(w, train, i, f.data());
      total += m.loss.Value(f.data(), train.y[static_cast<size_t>(i)]);
      if (with_grad) {
        m.loss.GradHess(f.data(), train.y[static_cast<size_t>(i)], g.data(), h.data());
        std::copy(g.begin(), g.end(), &dloss[static_cast<size_t>(i * K)]);
      }
    }
    double reg = 0;
    for (double v : w) reg += v * v;
    if (with_grad) {
      for (size_t j = 0; j < w.size(); ++j) grad[j] = 2 * lambda * w[j];
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t tr = 0; tr < trees; ++tr) {
          const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + train.Leaf(tr, i));
          for (int c = 0; c < K; ++c) grad[flat * K + c] += dloss[static_cast<size_t>(i * K + c)] / stats.count[flat] / static_cast<double>(n);
        }
      }
    }
    return total / static_cast<double>(n) + lambda * reg;
  };
  double value = objective(W, true);
  auto grad_norm = [&] {
    double s = 0;
    for (double v : grad) s += std::abs(v);
    return s / static_cast<double>(grad.size());
  };
  const double initial = grad_norm();
  double step = 1.0;
  for (int epoch = 0; epoch < 3000 && grad_norm() > initial / 200.0; ++epoch) {
    if (epoch % 50 == 0) {
      if (absl::Status s = in.check(); !s.ok()) return s;
    }
    double gg = 0;
    for (double v : grad) gg += v * v;
    // Backtracking (Armijo) line search.
    double next = value;
    for (int tries = 0; tries < 60; ++tries) {
      for (size_t j = 0; j < W.size(); ++j) trial[j] = W[j] - step * grad[j];
      next = objective(trial, false);
      if (next <= value - 0.5 * step * gg) break;
      step *= 0.5;
    }
    W.swap(trial);
    value = objective(W, true);
    step *= 2;  // let the step grow back
  }
  // Representer weights α_i = ℓ'(f_i)/(−2λN); at the optimum W = Σ α_i φ_i.
  std::vector<double> alpha(static_cast<size_t>(n * K));
  for (size_t j = 0; j < alpha.size(); ++j) alpha[j] = dloss[j] / (-2 * lambda * static_cast<double>(n));
  std::vector<double> Wstar(static_cast<size_t>(L * K), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t tr = 0; tr < trees; ++tr) {
      const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + train.Leaf(tr, i));
      for (int c = 0; c < K; ++c) Wstar[flat * K + c] += alpha[static_cast<size_t>(i * K + c)] / stats.count[flat];
    }
  }
  InfluenceMatrix out{n, test.n, std::vector<double>(static_cast<size_t>(n * test.n))};
  ParallelFor(test.n, in.threads, [&](int64_t begin, int64_t end) {
    std::vector<double> kernel(static_cast<size_t>(n)), s(static_cast<size_t>(K)), s2(static_cast<size_t>(K));
    for (int64_t e = begin; e < end; ++e) {
      forward(Wstar, test, e, s.data());
      const double base = m.loss.Value(s.data(), test.y[static_cast<size_t>(e)]);
      std::fill(kernel.begin(), kernel.end(), 0.0);
      for (int64_t tr = 0; tr < trees; ++tr) {
        const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + test.Leaf(tr, e));
        const double w = 1.0 / (stats.count[flat] * stats.count[flat]);
        for (int32_t i : members[flat]) kernel[static_cast<size_t>(i)] += w;
      }
      for (int64_t i = 0; i < n; ++i) {
        if (kernel[static_cast<size_t>(i)] == 0) continue;  // no shared leaf: no effect
        for (int c = 0; c < K; ++c) s2[static_cast<size_t>(c)] = s[static_cast<size_t>(c)] - alpha[static_cast<size_t>(i * K + c)] * kernel[static_cast<size_t>(i)];
        out.at(i, e) = m.loss.Value(s2.data(), test.y[static_cast<size_t>(e)]) - base;
      }
    }
  });
  return out;
}

absl::StatusOr<InfluenceMatrix> LeaveOneOut(const ExplainInput& in) {
  const int64_t n = in.train->rows, nt = in.test->rows;
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  absl::StatusOr<std::vector<double>> base = RetrainedTestLosses(in, all);
  if (!base.ok()) return base.status();
  InfluenceMatrix out{n, nt, std::vector<double>(static_cast<size_t>(n * nt))};
  StopFlag stop;
  std::atomic<int64_t> done{0};
  const int64_t removed = in.max_removed_rows < 0 ? n : std::min(n, in.max_removed_rows);
  ParallelFor(removed, in.threads, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> rows;
    for (int64_t i = begin; i < end && !stop.stop; ++i) {
      if (begin == 0) {
        if (absl::Status s = in.check(); !s.ok()) stop.Set(s);
        in.progress(done.load(), n);
      }
      rows.clear();
      for (int64_t k = 0; k < n; ++k) if (k != i) rows.push_back(k);
      absl::StatusOr<std::vector<double>> losses = RetrainedTestLosses(in, rows);
      if (!losses.ok()) {
        stop.Set(losses.status());
        return;
      }
      for (int64_t e = 0; e < nt; ++e) out.at(i, e) = (*losses)[static_cast<size_t>(e)] - (*base)[static_cast<size_t>(e)];
      ++done;
    }
  });
  if (stop.stop) return stop.status;
  return out;
}

absl::StatusOr<InfluenceMatrix> SubSample(const ExplainInput& in) {
  const int64_t n = in.train->rows, nt = in.test->rows, models = in.subsample_models;
  const int64_t keep = std::clamp<int64_t>(std::llround(in.subsample_fraction * static_cast<double>(n)), 1, n - 1);
  struct Sums {
    std::vector<double> in_sum, out_sum;
    std::vector<int64_t> in_count;
  };
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(in.threads, models)));
  std::vector<Sums> sums(static_cast<size_t>(workers));
  StopFlag stop;
  std::atomic<int64_t> done{0};
  ParallelFor(workers, workers, [&](int64_t wb, int64_t we) {
    for (int64_t w = wb; w < we; ++w) {
      Sums& s = sums[static_cast<size_t>(w)];
      s.in_sum.assign(static_cast<size_t>(n * nt), 0.0);
      s.out_sum = s.in_sum;
      s.in_count.assign(static_cast<size_t>(n), 0);
      std::vector<int64_t> order(static_cast<size_t>(n));
      std::vector<char> chosen(static_cast<size_t>(n));
      // Model j is drawn from its own seed, so results do not depend on
      // the thread count.
      for (int64_t j = w; j < models && !stop.stop; j += workers) {
        if (w == 0) {
          if (absl::Status st = in.check(); !st.ok()) stop.Set(st);
          in.progress(done.load(), models);
        }
        std::iota(order.begin(), order.end(), 0);
        std::mt19937_64 rng(in.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(j));
        for (int64_t k = 0; k < keep; ++k) {  // partial Fisher–Yates
          std::uniform_int_distribution<int64_t> pick(k, n - 1);
          std::swap(order[static_cast<size_t>(k)], order[static_cast<size_t>(pick(rng))]);
        }
        std::vector<int64_t> rows(order.begin(), order.begin() + keep);
        std::sort(rows.begin(), rows.end());
        absl::StatusOr<std::vector<double>> losses = RetrainedTestLosses(in, rows);
        if (!losses.ok()) {
          stop.Set(losses.status());
          return;
        }
        std::fill(chosen.begin(), chosen.end(), 0);
        for (int64_t r : rows) chosen[static_cast<size_t>(r)] = 1;
        for (int64_t i = 0; i < n; ++i) {
          double* dst = chosen[static_cast<size_t>(i)] ? &s.in_sum[static_cast<size_t>(i * nt)] : &s.out_sum[static_cast<size_t>(i * nt)];
          for (int64_t e = 0; e < nt; ++e) dst[e] += (*losses)[static_cast<size_t>(e)];
          s.in_count[static_cast<size_t>(i)] += chosen[static_cast<size_t>(i)];
        }
        ++done;
      }
    }
  });
  if (stop.stop) return stop.status;
  InfluenceMatrix out{n, nt, std::vector<double>(static_cast<size_t>(n * nt))};
  for (int64_t i = 0; i < n; ++i) {
    int64_t cin = 0;
    for (const Sums& s : sums) cin += s.in_count[static_cast<size_t>(i)];
    const int64_t cout = models - cin;
    for (int64_t e = 0; e < nt; ++e) {
      double sin = 0, sout = 0;
      for (const Sums& s : sums) {
        sin += s.in_sum[static_cast<size_t>(i * nt + e)];
        sout += s.out_sum[static_cast<size_t>(i * nt + e)];
      }
      // A row never left out (or never kept) has no estimate: 0.
      out.at(i, e) = (cin > 0 && cout > 0) ? sout / static_cast<double>(cout) - sin / static_cast<double>(cin) : 0.0;
    }
  }
  return out;
}

InfluenceMatrix LeafSim(const ExplainInput& in) {
  const Ensemble& m = *in.model;
  const RowsPass train = ReplayRows(m, *in.train, in.threads);
  const RowsPass test = ReplayRows(m, *in.test, in.threads);
  const LeafStats stats = ComputeLeafStats(m, train);
  const LeafMembers members = ComputeLeafMembers(stats, train);
  const double mean = TrainMean(*in.train);
  InfluenceMatrix out{train.n, test.n, std::vector<double>(static_cast<size_t>(train.n * test.n))};
  ParallelFor(test.n, in.threads, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      for (int64_t tr = 0; tr < m.rounds * m.K(); ++tr) {
        const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + test.Leaf(tr, e));
        const double w = 1.0 / (stats.count[flat] * stats.count[flat]);
        for (int32_t i : members[flat]) out.at(i, e) += w;
      }
      for (int64_t i = 0; i < train.n; ++i) {
        out.at(i, e) *= LabelAgreement(m, train.y[static_cast<size_t>(i)], test.y[static_cast<size_t>(e)], mean);
      }
    }
  });
  return out;
}

InfluenceMatrix InputSim(const ExplainInput& in) {
  const Table& tr = *in.train;
  const Table& te = *in.test;
  // Missing values count as the training column mean.
  std::vector<double> col_mean(static_cast<size_t>(tr.cols), 0.0), col_n(static_cast<size_t>(tr.cols), 0.0);
  for (int64_t i = 0; i < tr.rows; ++i) {
    for (int64_t c = 0; c < tr.cols; ++c) {
      if (!std::isnan(tr.row(i)[c])) {
        col_mean[static_cast<size_t>(c)] += tr.row(i)[c];
        col_n[static_cast<size_t>(c)] += 1;
      }
    }
  }
  for (int64_t c = 0; c < tr.cols; ++c) col_mean[static_cast<size_t>(c)] /= std::max(1.0, col_n[static_cast<size_t>(c)]);
  auto value = [&](const float* x, int64_t c) { return std::isnan(x[c]) ? col_mean[static_cast<size_t>(c)] : static_cast<double>(x[c]); };
  const double mean = TrainMean(tr);
  InfluenceMatrix out{tr.rows, te.rows, std::vector<double>(static_cast<size_t>(tr.rows * te.rows))};
  ParallelFor(tr.rows, in.threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t e = 0; e < te.rows; ++e) {
        double d2 = 0;
        for (int64_t c = 0; c < tr.cols; ++c) {
          const double d = value(tr.row(i), c) - value(te.row(e), c);
          d2 += d * d;
        }
        out.at(i, e) = LabelAgreement(*in.model, tr.y[static_cast<size_t>(i)], te.y[static_cast<size_t>(e)], mean) /
                       std::max(std::sqrt(d2), 1e-12);
      }
    }
  });
  return out;
}

InfluenceMatrix TargetBaseline(const ExplainInput& in) {
  const double mean = TrainMean(*in.train);
  std::mt19937_64 rng(in.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  InfluenceMatrix out{in.train->rows, in.test->rows, std::vector<double>(static_cast<size_t>(in.train->rows * in.test->rows))};
  for (int64_t i = 0; i < out.n_train; ++i) {
    for (int64_t e = 0; e < out.n_test; ++e) {
      const double r = u(rng);
      out.at(i, e) = LabelAgreement(*in.model, in.train->y[static_cast<size_t>(i)], in.test->y[static_cast<size_t>(e)], mean) > 0 ? r : r - 1.0;
    }
  }
  return out;
}

InfluenceMatrix RandomBaseline(const ExplainInput& in) {
  std::mt19937_64 rng(in.seed);
  std::normal_distribution<double> normal;
  InfluenceMatrix out{in.train->rows, in.test->rows, std::vector<double>(static_cast<size_t>(in.train->rows * in.test->rows))};
  for (double& v : out.values) v = normal(rng);
  return out;
}

absl::StatusOr<InfluenceMatrix> ComputeInfluence(const std::string& method, const ExplainInput& in) {
  if (method == "boostin") return BoostIn(in);
  if (method == "trex") return Trex(in);
  if (method == "leaf_influence") return LeafInfluence(in, in.update_set);
  if (method == "leaf_influence_sp") return LeafInfluence(in, 0);
  if (method == "leaf_refit") return LeafRefit(in);
  if (method == "loo") return LeaveOneOut(in);
  if (method == "subsample") return SubSample(in);
  if (method == "leaf_sim") return LeafSim(in);
  if (method == "input_sim") return InputSim(in);
  if (method == "target") return TargetBaseline(in);
  if (method == "random") return RandomBaseline(in);
  return absl::InvalidArgumentError(absl::StrCat("gbdt.influence parameter 'method': unknown method '", method,
                                                 "'; one of ", absl::StrJoin(MethodNames(), ", ")));
}

}  // namespace loupe::gbdt
