// Thin RAII wrapper over XGBoost's C API (libxgboost 1.7): train a booster
// on a Table, predict margins, save/load JSON.
//
// A Booster is owned by one thread at a time; different Boosters may train
// concurrently on different threads (each with its own DMatrix).
#ifndef LOUPE_WORKERS_GBDT_XGB_H_
#define LOUPE_WORKERS_GBDT_XGB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/gbdt/table.h"

namespace loupe::gbdt {

struct TrainOptions {
  std::string objective = "binary:logistic";
  int num_class = 0;  // multiclass only
  int64_t n_estimators = 100;
  int64_t max_depth = 5;
  double learning_rate = 0.3;
  double reg_lambda = 1.0;
  double min_child_weight = 1.0;
  std::string tree_method = "hist";
  double base_score = 0.5;
  uint64_t seed = 1;
  int threads = 1;
};

class Booster {
 public:
  // Trains on `data`, optionally with per-row weights (empty: all ones).
  static absl::StatusOr<std::unique_ptr<Booster>> Train(const Table& data, const TrainOptions& options,
                                                        const std::vector<float>& weights = {});
  // Loads a JSON model (for predicting and retraining-free checks).
  static absl::StatusOr<std::unique_ptr<Booster>> FromJson(const std::string& json, int threads);
  ~Booster();
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;

  // rows × K margins (K = 1 unless multiclass), row-major.
  absl::StatusOr<std::vector<double>> PredictMargin(const Table& data) const;
  absl::StatusOr<std::string> SaveJson() const;
  // Re-estimates every leaf value with the structure frozen (XGBoost's
  // `refresh` updater, refresh_leaf=1) on `data` with `weights`, replaying
  // the rounds in order: an independent oracle for LeafRefit. `options`
  // supplies eta, lambda and min_child_weight (a loaded model lacks them).
  absl::Status RefreshLeaves(const Table& data, const std::vector<float>& weights, const TrainOptions& options);

 private:
  explicit Booster(void* handle) : handle_(handle) {}
  void* handle_;
};

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_XGB_H_
