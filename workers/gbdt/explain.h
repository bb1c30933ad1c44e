// Influence estimators for gradient-boosted trees (tree_influence's
// explainers, with its known errors fixed; see docs/jobs/gbdt.influence.md).
//
// Every method returns an n_train × n_test matrix, row-major, where entry
// (i, e) estimates L(test e | model without row i) − L(test e | model):
// positive = training row i helps test row e (as in the paper).
//
// ComputeInfluence is re-entrant; it parallelises internally over
// `threads` and polls `check` between chunks of work.
#ifndef LOUPE_WORKERS_GBDT_EXPLAIN_H_
#define LOUPE_WORKERS_GBDT_EXPLAIN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/gbdt/ensemble.h"
#include "workers/gbdt/replay.h"
#include "workers/gbdt/table.h"
#include "workers/gbdt/xgb.h"

namespace loupe::gbdt {

// All method names accepted by ComputeInfluence.
const std::vector<std::string>& MethodNames();

struct ExplainInput {
  const Ensemble* model = nullptr;
  const Table* train = nullptr;
  const Table* test = nullptr;
  Hyper hyper;
  TrainOptions retrain;           // loo, subsample: how the model is refit
  int threads = 1;
  uint64_t seed = 1;
  int64_t update_set = -1;        // leaf_influence: -1 all, 0 single, k top-k leaves
  int64_t subsample_models = 4000;
  double subsample_fraction = 0.7;
  double trex_lambda = 0.003;
  // leaf_influence, leaf_refit, loo: compute only the first this many
  // training rows (the rest stay 0). For benchmarks that time a sample of
  // rows and extrapolate; −1: all.
  int64_t max_removed_rows = -1;
  // Polled between chunks; a non-OK status stops the method.
  std::function<absl::Status()> check = [] { return absl::OkStatus(); };
  // Progress in method-specific units (rows explained, models trained).
  std::function<void(int64_t done, int64_t total)> progress = [](int64_t, int64_t) {};
};

struct InfluenceMatrix {
  int64_t n_train = 0, n_test = 0;
  std::vector<double> values;  // [i * n_test + e]
  double& at(int64_t i, int64_t e) { return values[static_cast<size_t>(i * n_test + e)]; }
  double at(int64_t i, int64_t e) const { return values[static_cast<size_t>(i * n_test + e)]; }
};

absl::StatusOr<InfluenceMatrix> ComputeInfluence(const std::string& method, const ExplainInput& in);

// Individual methods (exposed for tests and benchmarks).
InfluenceMatrix BoostIn(const ExplainInput& in);
absl::StatusOr<InfluenceMatrix> LeafInfluence(const ExplainInput& in, int64_t update_set);
absl::StatusOr<InfluenceMatrix> LeafRefit(const ExplainInput& in);
absl::StatusOr<InfluenceMatrix> Trex(const ExplainInput& in);
absl::StatusOr<InfluenceMatrix> LeaveOneOut(const ExplainInput& in);
absl::StatusOr<InfluenceMatrix> SubSample(const ExplainInput& in);
InfluenceMatrix LeafSim(const ExplainInput& in);
InfluenceMatrix InputSim(const ExplainInput& in);
InfluenceMatrix TargetBaseline(const ExplainInput& in);
InfluenceMatrix RandomBaseline(const ExplainInput& in);

// Loss of each test row under margins [e*K + c].
std::vector<double> RowLosses(const Loss& loss, const std::vector<double>& margins, const std::vector<double>& y);

// "Same label" for the sign of the similarity baselines: equal class, or
// for regression both targets on the same side of the training mean.
double LabelAgreement(const Ensemble& model, double y_train, double y_test, double train_mean);

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_EXPLAIN_H_
