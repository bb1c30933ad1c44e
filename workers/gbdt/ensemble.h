// Ensemble: Loupe's own representation of a trained XGBoost tree ensemble,
// and the losses it was trained on.
//
// Trees are parsed from XGBoost's JSON model (not the text dump), so split
// thresholds, default directions for missing values and leaf values are
// exact. XGBoost routes x to the left child when x < threshold, and a missing
// x to the side of default_left. Leaf values already include the learning
// rate. Margins start at base_margin (XGBoost 1.7: base_score for squared
// error, logit(base_score) for binary logistic, base_score itself for every
// class of multi:softprob/softmax) and add one tree per class per round.
//
// Immutable after parsing; safe to share between threads.
#ifndef LOUPE_WORKERS_GBDT_ENSEMBLE_H_
#define LOUPE_WORKERS_GBDT_ENSEMBLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loupe::gbdt {

enum class Objective { kSquaredError, kBinaryLogistic, kMulticlass };

// Loss, gradient and Hessian as XGBoost 1.7 computes them (so replaying
// boosting reproduces the stored leaf values): squared error ½(F−y)²;
// logistic with Hessian max(p(1−p), 1e-16); softmax cross-entropy with
// Hessian max(2p(1−p), 1e-16) per class (XGBoost's factor 2).
struct Loss {
  Objective objective = Objective::kSquaredError;
  int num_class = 1;  // K: margins per row

  // Loss of one row with margins f[0..K).
  double Value(const double* f, double y) const;
  // g[c], h[c] at margins f.
  void GradHess(const double* f, double y, double* g, double* h) const;
  // Predicted probabilities (classification) or value (regression) into out[0..K).
  void Predict(const double* f, double* out) const;
};

struct Tree {
  std::vector<int32_t> left, right, feature;  // left[n] == -1: leaf
  std::vector<float> threshold;               // leaves: unused
  std::vector<uint8_t> default_left;
  std::vector<double> value;                  // leaves: leaf value (× learning rate)
  std::vector<int32_t> leaf_id;               // node → dense leaf index 0..num_leaves (−1 inner)
  std::vector<int32_t> leaf_node;             // dense leaf index → node
  int32_t num_leaves() const { return static_cast<int32_t>(leaf_node.size()); }

  // Dense leaf index reached by row x.
  int32_t Leaf(const float* x) const;
};

struct Ensemble {
  Loss loss;
  int64_t num_features = 0;
  int64_t rounds = 0;
  double base_margin = 0;       // added to every class's margin
  double base_score = 0.5;      // as stored by XGBoost
  std::vector<Tree> trees;      // rounds × K, tree (t, c) at t * K + c
  std::string objective_name;   // XGBoost's name

  int K() const { return loss.num_class; }
  const Tree& tree(int64_t t, int c) const { return trees[static_cast<size_t>(t * K() + c)]; }
  // Margins of row x after all rounds, into f[0..K).
  void Margin(const float* x, double* f) const;
};

// Parses XGBoost's JSON model (Booster.save_raw("json") / SaveModel to
// .json). Supports gbtree with the three objectives above, numerical splits
// only. Errors are INVALID_ARGUMENT naming `field` and the problem.
absl::StatusOr<Ensemble> ParseXgboostJson(const std::string& json, const std::string& field);

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_ENSEMBLE_H_
