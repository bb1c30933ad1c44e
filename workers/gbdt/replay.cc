#include "workers/gbdt/replay.h"

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
  ParallelFor(p.n, threads, [&](int64_t begin, int64_t end) {
    std::vector<double> f(static_cast<size_t>(K)), hh(static_cast<size_t>(K));
    for (int64_t i = begin; i < end; ++i) {
      const float* x = rows.row(i);
      for (int c = 0; c < K; ++c) f[static_cast<size_t>(c)] = model.base_margin;
      for (int64_t t = 0; t < p.rounds; ++t) {
        model.loss.GradHess(f.data(), rows.y[static_cast<size_t>(i)], &p.g[p.GIndex(t, i, 0)], &p.h[p.GIndex(t, i, 0)]);
        for (int c = 0; c < K; ++c) {
          const Tree& tr = model.tree(t, c);
          const int32_t l = tr.Leaf(x);
          p.leaf[static_cast<size_t>((t * K + c) * p.n + i)] = l;
          f[static_cast<size_t>(c)] += tr.value[static_cast<size_t>(tr.leaf_node[static_cast<size_t>(l)])];
        }
      }
      for (int c = 0; c < K; ++c) p.final_margin[static_cast<size_t>(i * K + c)] = f[static_cast<size_t>(c)];
      model.loss.GradHess(f.data(), rows.y[static_cast<size_t>(i)], &p.final_g[static_cast<size_t>(i * K)], hh.data());
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
