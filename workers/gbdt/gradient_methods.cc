// BoostIn, LeafInfluence (all / single / top-k update sets) and LeafRefit:
// the methods that differentiate or refit leaf values with the tree
// structure held fixed.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include "workers/gbdt/explain.h"
#include "workers/gbdt/parallel.h"

namespace loupe::gbdt {
namespace {


double StoredLeaf(const Ensemble& m, int64_t tree, int32_t leaf) {
  const Tree& t = m.trees[static_cast<size_t>(tree)];
  return t.value[static_cast<size_t>(t.leaf_node[static_cast<size_t>(leaf)])];
}

// Changes dg[c], dh[c] of one row's gradient and Hessian for a change dF of
// its margins (exact derivatives of XGBoost's g and h; the Hessian floor
// is flat).
void GradHessDerivative(const Loss& loss, const double* g, const double* h, double y, const double* dF, double* dg,
                        double* dh) {
  const int K = loss.num_class;
  switch (loss.objective) {
    case Objective::kSquaredError:
      dg[0] = dF[0];
      dh[0] = 0;
      return;
    case Objective::kBinaryLogistic: {
      const double p = g[0] + y;
      const double s = p * (1 - p);
      dg[0] = s * dF[0];
      dh[0] = h[0] > 1e-16 ? (1 - 2 * p) * s * dF[0] : 0.0;
      return;
    }
    case Objective::kMulticlass: {
      double mean = 0;
      for (int c = 0; c < K; ++c) mean += (g[c] + (c == static_cast<int>(y))) * dF[c];
      for (int c = 0; c < K; ++c) {
        const double p = g[c] + (c == static_cast<int>(y));
        dg[c] = p * (dF[c] - mean);
        dh[c] = h[c] > 1e-16 ? 2 * (1 - 2 * p) * dg[c] : 0.0;
      }
      return;
    }
  }
}

// Shared cancellation: the calling thread polls `check`, the others read
// the flag (JobContext is only used from the job's own thread).
struct StopFlag {
  std::atomic<bool> stop{false};
  absl::Status status;
};

}  // namespace

InfluenceMatrix BoostIn(const ExplainInput& in) {
  const Ensemble& m = *in.model;
  const Table& X = *in.train;
  const int K = m.K();
  const int64_t n = X.rows, trees = m.rounds * K;
  const double eta = in.hyper.learning_rate;
  std::vector<int64_t> offset(static_cast<size_t>(trees + 1), 0);
  for (int64_t tr = 0; tr < trees; ++tr) offset[static_cast<size_t>(tr + 1)] = offset[static_cast<size_t>(tr)] + m.trees[static_cast<size_t>(tr)].num_leaves();
  const int64_t L = offset.back();
  // One fused replay of the training rows (BoostIn needs neither g nor h
  // afterwards, and on large tables allocating them costs more than the
  // arithmetic): leaf of each row in each tree, the numerator η·g + v·h of
  // D (the exact derivative with θ = v/η; tree_influence uses v, equal only
  // when η = 1), and per-leaf Hessian sums and counts.
  std::vector<int32_t> leaf(static_cast<size_t>(trees * n));
  std::vector<float> D(static_cast<size_t>(trees * n));
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(in.threads, n)));
  std::vector<std::vector<double>> H_part(static_cast<size_t>(workers), std::vector<double>(static_cast<size_t>(L), 0.0));
  std::vector<std::vector<int64_t>> count_part(static_cast<size_t>(workers), std::vector<int64_t>(static_cast<size_t>(L), 0));
  const int64_t chunk = (n + workers - 1) / workers;
  ParallelFor(workers, workers, [&](int64_t wb, int64_t we) {
    for (int64_t w = wb; w < we; ++w) {
      std::vector<double>& Hw = H_part[static_cast<size_t>(w)];
      std::vector<int64_t>& Cw = count_part[static_cast<size_t>(w)];
      constexpr int64_t kBlock = 256;
      std::vector<double> f(static_cast<size_t>(kBlock * K)), g(static_cast<size_t>(K)), h(static_cast<size_t>(K));
      for (int64_t b0 = w * chunk; b0 < std::min(n, (w + 1) * chunk); b0 += kBlock) {
        const int64_t b1 = std::min({n, (w + 1) * chunk, b0 + kBlock});
        std::fill(f.begin(), f.end(), m.base_margin);
        for (int64_t t = 0; t < m.rounds; ++t) {
          for (int64_t i = b0; i < b1; ++i) {
            double* fi = &f[static_cast<size_t>((i - b0) * K)];
            m.loss.GradHess(fi, X.y[static_cast<size_t>(i)], g.data(), h.data());
            for (int c = 0; c < K; ++c) {
              const int64_t tr = t * K + c;
              const Tree& tree = m.trees[static_cast<size_t>(tr)];
              const int32_t l = tree.Leaf(X.row(i));
              const double v = tree.value[static_cast<size_t>(tree.leaf_node[static_cast<size_t>(l)])];
              leaf[static_cast<size_t>(tr * n + i)] = l;
              D[static_cast<size_t>(tr * n + i)] = static_cast<float>(eta * g[static_cast<size_t>(c)] + v * h[static_cast<size_t>(c)]);
              Hw[static_cast<size_t>(offset[static_cast<size_t>(tr)] + l)] += h[static_cast<size_t>(c)];
              ++Cw[static_cast<size_t>(offset[static_cast<size_t>(tr)] + l)];
              fi[c] += v;
            }
          }
        }
      }
    }
  });
  std::vector<double> scale(static_cast<size_t>(L));
  std::vector<int64_t> begin(static_cast<size_t>(L + 1), 0);
  for (int64_t l = 0; l < L; ++l) {
    double H = 0;
    int64_t count = 0;
    for (int w = 0; w < workers; ++w) {
      H += H_part[static_cast<size_t>(w)][static_cast<size_t>(l)];
      count += count_part[static_cast<size_t>(w)][static_cast<size_t>(l)];
    }
    scale[static_cast<size_t>(l)] = (H < in.hyper.min_child_weight || H <= 0) ? 0.0 : 1.0 / (H + in.hyper.reg_lambda);
    begin[static_cast<size_t>(l + 1)] = begin[static_cast<size_t>(l)] + count;
  }
  // Rows of each leaf (counting sort) and their D, side by side.
  std::vector<int32_t> member(static_cast<size_t>(trees * n));
  std::vector<float> member_d(member.size());
  {
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t tr = 0; tr < trees; ++tr) {
      const int64_t off = offset[static_cast<size_t>(tr)];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t flat = off + leaf[static_cast<size_t>(tr * n + i)];
        const int64_t slot = next[static_cast<size_t>(flat)]++;
        member[static_cast<size_t>(slot)] = static_cast<int32_t>(i);
        member_d[static_cast<size_t>(slot)] = static_cast<float>(D[static_cast<size_t>(tr * n + i)] * scale[static_cast<size_t>(flat)]);
      }
    }
  }
  const RowsPass test = ReplayRows(m, *in.test, in.threads);
  InfluenceMatrix out{n, test.n, std::vector<double>(static_cast<size_t>(n * test.n))};
  ParallelFor(test.n, in.threads, [&](int64_t b, int64_t e_end) {
    std::vector<double> col(static_cast<size_t>(n));
    for (int64_t e = b; e < e_end; ++e) {
      std::fill(col.begin(), col.end(), 0.0);
      for (int64_t tr = 0; tr < trees; ++tr) {
        const double ge = test.g[test.GIndex(tr / K, e, static_cast<int>(tr % K))];
        const int64_t flat = offset[static_cast<size_t>(tr)] + test.Leaf(tr, e);
        for (int64_t s = begin[static_cast<size_t>(flat)]; s < begin[static_cast<size_t>(flat) + 1]; ++s) {
          col[static_cast<size_t>(member[static_cast<size_t>(s)])] += ge * member_d[static_cast<size_t>(s)];
        }
      }
      for (int64_t i = 0; i < n; ++i) out.at(i, e) = col[static_cast<size_t>(i)];
    }
  });
  return out;
}

absl::StatusOr<InfluenceMatrix> LeafInfluence(const ExplainInput& in, int64_t update_set) {
  const Ensemble& m = *in.model;
  const RowsPass train = ReplayRows(m, *in.train, in.threads);
  const RowsPass test = ReplayRows(m, *in.test, in.threads);
  const LeafStats stats = ComputeLeafStats(m, train);
  const LeafMembers members = ComputeLeafMembers(stats, train);
  const int K = m.K();
  const int64_t n = train.n, trees = m.rounds * K, L = stats.total_leaves();
  const double eta = in.hyper.learning_rate, lambda = in.hyper.reg_lambda;
  std::vector<double> theta(static_cast<size_t>(L)), inv(static_cast<size_t>(L));
  for (int64_t tr = 0; tr < trees; ++tr) {
    for (int32_t l = 0; l < m.trees[static_cast<size_t>(tr)].num_leaves(); ++l) {
      const size_t flat = static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + l);
      theta[flat] = StoredLeaf(m, tr, l) / eta;
      const bool frozen = stats.H[flat] < in.hyper.min_child_weight || stats.H[flat] <= 0;  // value pinned at 0
      inv[flat] = frozen ? 0.0 : -eta / (stats.H[flat] + lambda);
    }
  }
  InfluenceMatrix out{n, test.n, std::vector<double>(static_cast<size_t>(n * test.n))};
  StopFlag stop;
  std::atomic<int64_t> done{0};
  const int64_t removed = in.max_removed_rows < 0 ? n : std::min(n, in.max_removed_rows);
  ParallelFor(removed, in.threads, [&](int64_t begin, int64_t end) {
    const bool polls = begin == 0;
    std::vector<double> D(static_cast<size_t>(n * K)), J(static_cast<size_t>(L)), S(static_cast<size_t>(L));
    std::vector<double> dg(static_cast<size_t>(n * K)), dh(static_cast<size_t>(n * K));
    std::vector<char> tracked(static_cast<size_t>(n));
    std::vector<int32_t> list;
    std::vector<int32_t> order;
    for (int64_t i = begin; i < end; ++i) {
      if (polls) {
        if (absl::Status s = in.check(); !s.ok()) {
          stop.status = s;
          stop.stop = true;
        }
        in.progress(done.load(), n);
      }
      if (stop.stop) return;
      list.clear();
      std::fill(tracked.begin(), tracked.end(), 0);
      if (update_set < 0) {
        list.resize(static_cast<size_t>(n));
        std::iota(list.begin(), list.end(), 0);
        std::fill(tracked.begin(), tracked.end(), 1);
      } else {
        list.push_back(static_cast<int32_t>(i));
        tracked[static_cast<size_t>(i)] = 1;
      }
      for (int32_t k : list) std::fill_n(&D[static_cast<size_t>(k) * K], K, 0.0);
      std::fill(J.begin(), J.end(), 0.0);
      for (int64_t t = 0; t < m.rounds; ++t) {
        for (int32_t k : list) {
          GradHessDerivative(m.loss, &train.g[train.GIndex(t, k, 0)], &train.h[train.GIndex(t, k, 0)],
                             train.y[static_cast<size_t>(k)], &D[static_cast<size_t>(k) * K],
                             &dg[static_cast<size_t>(k) * K], &dh[static_cast<size_t>(k) * K]);
        }
        for (int c = 0; c < K; ++c) {
          const int64_t tr = t * K + c;
          const int64_t off = stats.offset[static_cast<size_t>(tr)];
          const int32_t nl = m.trees[static_cast<size_t>(tr)].num_leaves();
          std::fill_n(&S[static_cast<size_t>(off)], nl, 0.0);
          for (int32_t k : list) {
            const size_t flat = static_cast<size_t>(off + train.Leaf(tr, k));
            S[flat] += dg[static_cast<size_t>(k) * K + c] + theta[flat] * dh[static_cast<size_t>(k) * K + c];
          }
          const size_t own = static_cast<size_t>(off + train.Leaf(tr, i));
          S[own] += train.g[train.GIndex(t, i, c)] + theta[own] * train.h[train.GIndex(t, i, c)];
          for (int32_t l = 0; l < nl; ++l) J[static_cast<size_t>(off + l)] = inv[static_cast<size_t>(off + l)] * S[static_cast<size_t>(off + l)];
          if (update_set > 0) {
            // Top-k: the rows of the k leaves whose values move most join
            // the update set from here on.
            order.resize(static_cast<size_t>(nl));
            std::iota(order.begin(), order.end(), 0);
            const int64_t k = std::min<int64_t>(update_set, nl);
            std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
              return std::abs(J[static_cast<size_t>(off + a)]) > std::abs(J[static_cast<size_t>(off + b)]);
            });
            for (int64_t r = 0; r < k; ++r) {
              for (int32_t row : members[off + order[static_cast<size_t>(r)]]) {
                if (!tracked[static_cast<size_t>(row)]) {
                  tracked[static_cast<size_t>(row)] = 1;
                  // Untracked until now: its margin derivative, and so its
                  // gradient's change this round, count as zero.
                  std::fill_n(&D[static_cast<size_t>(row) * K], K, 0.0);
                  std::fill_n(&dg[static_cast<size_t>(row) * K], K, 0.0);
                  std::fill_n(&dh[static_cast<size_t>(row) * K], K, 0.0);
                  list.push_back(row);
                }
              }
            }
          }
        }
        for (int32_t k : list) {
          for (int c = 0; c < K; ++c) {
            const int64_t tr = t * K + c;
            D[static_cast<size_t>(k) * K + c] += J[static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + train.Leaf(tr, k))];
          }
        }
      }
      // Removing row i is w_i: 1 → 0, so the loss moves by −dL/dw_i.
      for (int64_t e = 0; e < test.n; ++e) {
        double dL = 0;
        for (int64_t tr = 0; tr < trees; ++tr) {
          dL += test.final_g[static_cast<size_t>(e * K + tr % K)] *
                J[static_cast<size_t>(stats.offset[static_cast<size_t>(tr)] + test.Leaf(tr, e))];
        }
        out.at(i, e) = -dL;
      }
      ++done;
    }
  });
  if (stop.stop) return stop.status;
  return out;
}

absl::StatusOr<InfluenceMatrix> LeafRefit(const ExplainInput& in) {
  const Ensemble& m = *in.model;
  const RowsPass train = ReplayRows(m, *in.train, in.threads);
  const RowsPass test = ReplayRows(m, *in.test, in.threads);
  const int K = m.K();
  const int64_t n = train.n, nt = test.n;
  const int64_t max_leaves = [&] {
    int32_t most = 0;
    for (const Tree& t : m.trees) most = std::max(most, t.num_leaves());
    return most;
  }();
  // Refits every leaf with row `drop` left out (−1: none) and returns the
  // test rows' losses. Gradients of round t are taken at the refitted margin
  // *before* round t (tree_influence's leaf_refit.py uses the margin after).
  auto refit_losses = [&](int64_t drop, std::vector<double>& F, std::vector<double>& Ft, std::vector<double>& G,
                          std::vector<double>& H, std::vector<double>& gk, std::vector<double>& hk,
                          std::vector<double>& losses) {
    std::fill(F.begin(), F.end(), m.base_margin);
    std::fill(Ft.begin(), Ft.end(), m.base_margin);
    for (int64_t t = 0; t < m.rounds; ++t) {
      for (int64_t k = 0; k < n; ++k) m.loss.GradHess(&F[static_cast<size_t>(k * K)], train.y[static_cast<size_t>(k)], &gk[static_cast<size_t>(k * K)], &hk[static_cast<size_t>(k * K)]);
      for (int c = 0; c < K; ++c) {
        const int64_t tr = t * K + c;
        std::fill_n(G.begin(), max_leaves, 0.0);
        std::fill_n(H.begin(), max_leaves, 0.0);
        for (int64_t k = 0; k < n; ++k) {
          if (k == drop) continue;
          const size_t l = static_cast<size_t>(train.Leaf(tr, k));
          G[l] += gk[static_cast<size_t>(k * K + c)];
          H[l] += hk[static_cast<size_t>(k * K + c)];
        }
        for (int32_t l = 0; l < m.trees[static_cast<size_t>(tr)].num_leaves(); ++l) {
          G[static_cast<size_t>(l)] = LeafValue(G[static_cast<size_t>(l)], H[static_cast<size_t>(l)], in.hyper);  // G now holds values
        }
        for (int64_t k = 0; k < n; ++k) F[static_cast<size_t>(k * K + c)] += G[static_cast<size_t>(train.Leaf(tr, k))];
        for (int64_t e = 0; e < nt; ++e) Ft[static_cast<size_t>(e * K + c)] += G[static_cast<size_t>(test.Leaf(tr, e))];
      }
    }
    for (int64_t e = 0; e < nt; ++e) losses[static_cast<size_t>(e)] = m.loss.Value(&Ft[static_cast<size_t>(e * K)], test.y[static_cast<size_t>(e)]);
  };
  struct Buffers {
    std::vector<double> F, Ft, G, H, gk, hk, losses;
    Buffers(int64_t n, int64_t nt, int K, int64_t leaves)
        : F(static_cast<size_t>(n * K)), Ft(static_cast<size_t>(nt * K)), G(static_cast<size_t>(leaves)),
          H(static_cast<size_t>(leaves)), gk(static_cast<size_t>(n * K)), hk(static_cast<size_t>(n * K)),
          losses(static_cast<size_t>(nt)) {}
  };
  Buffers base(n, nt, K, max_leaves);
  refit_losses(-1, base.F, base.Ft, base.G, base.H, base.gk, base.hk, base.losses);
  InfluenceMatrix out{n, nt, std::vector<double>(static_cast<size_t>(n * nt))};
  StopFlag stop;
  std::atomic<int64_t> done{0};
  const int64_t removed = in.max_removed_rows < 0 ? n : std::min(n, in.max_removed_rows);
  ParallelFor(removed, in.threads, [&](int64_t begin, int64_t end) {
    Buffers b(n, nt, K, max_leaves);
    for (int64_t i = begin; i < end; ++i) {
      if (begin == 0) {
        if (absl::Status s = in.check(); !s.ok()) {
          stop.status = s;
          stop.stop = true;
        }
        in.progress(done.load(), n);
      }
      if (stop.stop) return;
      refit_losses(i, b.F, b.Ft, b.G, b.H, b.gk, b.hk, b.losses);
      for (int64_t e = 0; e < nt; ++e) out.at(i, e) = b.losses[static_cast<size_t>(e)] - base.losses[static_cast<size_t>(e)];
      ++done;
    }
  });
  if (stop.stop) return stop.status;
  return out;
}

}  // namespace loupe::gbdt
