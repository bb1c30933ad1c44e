// Replay: the quantities every gradient-based explainer needs, recomputed by
// replaying boosting on the training rows with the trees held fixed.
//
// tree_influence stores no per-leaf statistics either: starting from the base
// margin, the gradients g and Hessians h of round t are taken at the margin
// before round t, then the round's trees are added. Replaying also checks the
// parse: each stored leaf value must equal −η·G/(H+λ) (0 where H <
// min_child_weight, as XGBoost's CalcWeight does).
//
// Immutable once built; safe to read from many threads.
#ifndef LOUPE_WORKERS_GBDT_REPLAY_H_
#define LOUPE_WORKERS_GBDT_REPLAY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/gbdt/ensemble.h"
#include "workers/gbdt/table.h"

namespace loupe::gbdt {

struct Hyper {
  double learning_rate = 0.3;
  double reg_lambda = 1.0;
  double min_child_weight = 1.0;
};

// XGBoost's leaf value for sums G, H.
double LeafValue(double G, double H, const Hyper& hp);

// Leaves and per-round gradients of a set of rows (training or test).
struct RowsPass {
  int64_t n = 0, K = 1, rounds = 0;
  std::vector<int32_t> leaf;       // [(t*K + c)*n + i]
  std::vector<double> g, h;        // [((t*n) + i)*K + c], at the margin before round t
  std::vector<double> final_margin;  // [i*K + c]
  std::vector<double> final_g;       // [i*K + c]
  std::vector<double> y;

  int32_t Leaf(int64_t tree, int64_t i) const { return leaf[static_cast<size_t>(tree * n + i)]; }
  size_t GIndex(int64_t t, int64_t i, int c) const { return static_cast<size_t>((t * n + i) * K + c); }
};

RowsPass ReplayRows(const Ensemble& model, const Table& rows, int threads);

// Per-leaf sums of the training pass, offset into one flat array per tree.
struct LeafStats {
  std::vector<int64_t> offset;  // tree → first flat leaf index; size trees+1
  std::vector<double> G, H, count;
  int64_t total_leaves() const { return offset.back(); }
};

LeafStats ComputeLeafStats(const Ensemble& model, const RowsPass& train);

// Training rows of every flat leaf, as one array sliced by `begin`.
struct LeafMembers {
  std::vector<int64_t> begin;  // flat leaf → first index into rows; size total_leaves+1
  std::vector<int32_t> rows;
  const int32_t* Begin(int64_t flat) const { return rows.data() + begin[static_cast<size_t>(flat)]; }
  const int32_t* End(int64_t flat) const { return rows.data() + begin[static_cast<size_t>(flat) + 1]; }
  struct Range {
    const int32_t* first;
    const int32_t* last;
    const int32_t* begin() const { return first; }
    const int32_t* end() const { return last; }
  };
  Range operator[](int64_t flat) const { return {Begin(flat), End(flat)}; }
};

LeafMembers ComputeLeafMembers(const LeafStats& stats, const RowsPass& train);

// Largest |stored − recomputed| leaf value over the ensemble.
double MaxLeafValueError(const Ensemble& model, const LeafStats& stats, const Hyper& hp);

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_REPLAY_H_
