#include "workers/gbdt/replay.h"

#include <algorithm>
#include <cmath>

#include "workers/gbdt/parallel.h"

namespace loupe::gbdt {

double LeafValue(double G, double H, const Hyper& hp) {
  if (H < hp.min_child_weight || H <= 0) return 0.0;
  return -hp.learning_rate * G / (H + hp.reg_lambda);
}

RowsPass ReplayRows(const Ensemble& model, const Table& rows, int threads) {
  RowsPass p;
  p.n = rows.rows;
  p.K = model.K();
  p.rounds = model.rounds;
  p.y = rows.y;
  const int K = model.K();
  p.leaf.resize(static_cast<size_t>(p.rounds * K * p.n));
  p.g.resize(static_cast<size_t>(p.rounds * p.n * K));
  p.h.resize(p.g.size());
  p.final_margin.resize(static_cast<size_t>(p.n * K));
  p.final_g.resize(p.final_margin.size());
  // Round by round over blocks of rows, so each tree's leaf indices and
  // each round's gradients are written contiguously.
  ParallelFor(p.n, threads, [&](int64_t begin, int64_t end) {
    constexpr int64_t kBlock = 512;
    std::vector<double> f(static_cast<size_t>(kBlock * K)), hh(static_cast<size_t>(K));
    for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
      const int64_t b1 = std::min(end, b0 + kBlock);
      std::fill(f.begin(), f.end(), model.base_margin);
      for (int64_t t = 0; t < p.rounds; ++t) {
        for (int64_t i = b0; i < b1; ++i) {
          model.loss.GradHess(&f[static_cast<size_t>((i - b0) * K)], rows.y[static_cast<size_t>(i)], &p.g[p.GIndex(t, i, 0)],
                              &p.h[p.GIndex(t, i, 0)]);
        }
        for (int c = 0; c < K; ++c) {
          const Tree& tr = model.tree(t, c);
          int32_t* leaf = &p.leaf[static_cast<size_t>((t * K + c) * p.n)];
          for (int64_t i = b0; i < b1; ++i) {
            const int32_t l = tr.Leaf(rows.row(i));
            leaf[i] = l;
            f[static_cast<size_t>((i - b0) * K + c)] += tr.value[static_cast<size_t>(tr.leaf_node[static_cast<size_t>(l)])];
          }
        }
      }
      for (int64_t i = b0; i < b1; ++i) {
        for (int c = 0; c < K; ++c) p.final_margin[static_cast<size_t>(i * K + c)] = f[static_cast<size_t>((i - b0) * K + c)];
        model.loss.GradHess(&f[static_cast<size_t>((i - b0) * K)], rows.y[static_cast<size_t>(i)],
                            &p.final_g[static_cast<size_t>(i * K)], hh.data());
      }
    }
  });
  return p;
}

LeafStats ComputeLeafStats(const Ensemble& model, const RowsPass& train) {
  LeafStats s;
  const int K = model.K();
  const int64_t trees = model.rounds * K;
  s.offset.assign(static_cast<size_t>(trees + 1), 0);
  for (int64_t tr = 0; tr < trees; ++tr) s.offset[static_cast<size_t>(tr + 1)] = s.offset[static_cast<size_t>(tr)] + model.trees[static_cast<size_t>(tr)].num_leaves();
  s.G.assign(static_cast<size_t>(s.total_leaves()), 0.0);
  s.H = s.G;
  s.count = s.G;
  for (int64_t t = 0; t < model.rounds; ++t) {
    for (int c = 0; c < K; ++c) {
      const int64_t tr = t * K + c;
      const int64_t off = s.offset[static_cast<size_t>(tr)];
      for (int64_t i = 0; i < train.n; ++i) {
        const size_t l = static_cast<size_t>(off + train.Leaf(tr, i));
        s.G[l] += train.g[train.GIndex(t, i, c)];
        s.H[l] += train.h[train.GIndex(t, i, c)];
        s.count[l] += 1;
      }
    }
  }
  return s;
}

LeafMembers ComputeLeafMembers(const LeafStats& stats, const RowsPass& train) {
  LeafMembers m;
  const int64_t trees = train.rounds * train.K;
  m.begin.assign(static_cast<size_t>(stats.total_leaves() + 1), 0);
  for (int64_t l = 0; l < stats.total_leaves(); ++l) {
    m.begin[static_cast<size_t>(l + 1)] = m.begin[static_cast<size_t>(l)] + static_cast<int64_t>(stats.count[static_cast<size_t>(l)]);
  }
  m.rows.resize(static_cast<size_t>(trees * train.n));
  std::vector<int64_t> next(m.begin.begin(), m.begin.end() - 1);
  for (int64_t tr = 0; tr < trees; ++tr) {
    const int64_t off = stats.offset[static_cast<size_t>(tr)];
    for (int64_t i = 0; i < train.n; ++i) m.rows[static_cast<size_t>(next[static_cast<size_t>(off + train.Leaf(tr, i))]++)] = static_cast<int32_t>(i);
  }
  return m;
}

double MaxLeafValueError(const Ensemble& model, const LeafStats& stats, const Hyper& hp) {
  double worst = 0;
  for (size_t tr = 0; tr < model.trees.size(); ++tr) {
    const Tree& tree = model.trees[tr];
    for (int32_t l = 0; l < tree.num_leaves(); ++l) {
      const size_t flat = static_cast<size_t>(stats.offset[tr] + l);
      const double stored = tree.value[static_cast<size_t>(tree.leaf_node[static_cast<size_t>(l)])];
      worst = std::max(worst, std::abs(stored - LeafValue(stats.G[flat], stats.H[flat], hp)));
    }
  }
  return worst;
}

}  // namespace loupe::gbdt
