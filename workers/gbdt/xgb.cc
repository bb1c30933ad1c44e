#include "workers/gbdt/xgb.h"

#include <xgboost/c_api.h>

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loupe::gbdt {
namespace {

absl::Status XgbError(absl::string_view call) {
  return absl::InternalError(absl::StrCat("XGBoost ", call, " failed: ", XGBGetLastError()));
}

#define LOUPE_XGB(call)                                   \
  do {                                                    \
    if ((call) != 0) return XgbError(#call);              \
  } while (0)

// Owns a DMatrix handle.
class DMatrix {
 public:
  ~DMatrix() {
    if (handle_ != nullptr) XGDMatrixFree(handle_);
  }
  absl::Status Build(const Table& data, const std::vector<float>& weights) {
    LOUPE_XGB(XGDMatrixCreateFromMat(data.x.data(), static_cast<bst_ulong>(data.rows),
                                     static_cast<bst_ulong>(data.cols), std::numeric_limits<float>::quiet_NaN(),
                                     &handle_));
    std::vector<float> labels(data.y.begin(), data.y.end());
    LOUPE_XGB(XGDMatrixSetFloatInfo(handle_, "label", labels.data(), static_cast<bst_ulong>(labels.size())));
    if (!weights.empty()) {
      LOUPE_XGB(XGDMatrixSetFloatInfo(handle_, "weight", weights.data(), static_cast<bst_ulong>(weights.size())));
    }
    return absl::OkStatus();
  }
  DMatrixHandle handle_ = nullptr;
};

absl::Status SetParam(BoosterHandle b, const char* name, const std::string& value) {
  if (XGBoosterSetParam(b, name, value.c_str()) != 0) return XgbError(absl::StrCat("SetParam(", name, ")"));
  return absl::OkStatus();
}

}  // namespace

Booster::~Booster() {
  if (handle_ != nullptr) XGBoosterFree(handle_);
}

absl::StatusOr<std::unique_ptr<Booster>> Booster::Train(const Table& data, const TrainOptions& o,
                                                        const std::vector<float>& weights) {
  DMatrix dm;
  if (absl::Status s = dm.Build(data, weights); !s.ok()) return s;
  BoosterHandle h;
  LOUPE_XGB(XGBoosterCreate(&dm.handle_, 1, &h));
  std::unique_ptr<Booster> booster(new Booster(h));
  const std::vector<std::pair<const char*, std::string>> params = {
      {"verbosity", "0"},
      {"objective", o.objective},
      {"max_depth", absl::StrCat(o.max_depth)},
      {"eta", absl::StrFormat("%.17g", o.learning_rate)},
      {"lambda", absl::StrFormat("%.17g", o.reg_lambda)},
      {"min_child_weight", absl::StrFormat("%.17g", o.min_child_weight)},
      {"tree_method", o.tree_method},
      {"base_score", absl::StrFormat("%.17g", o.base_score)},
      {"seed", absl::StrCat(o.seed)},
      {"nthread", absl::StrCat(o.threads)},
  };
  for (const auto& [name, value] : params) {
    if (absl::Status s = SetParam(h, name, value); !s.ok()) return s;
  }
  if (o.num_class > 0) {
    if (absl::Status s = SetParam(h, "num_class", absl::StrCat(o.num_class)); !s.ok()) return s;
  }
  for (int64_t it = 0; it < o.n_estimators; ++it) LOUPE_XGB(XGBoosterUpdateOneIter(h, static_cast<int>(it), dm.handle_));
  return booster;
}

absl::StatusOr<std::unique_ptr<Booster>> Booster::FromJson(const std::string& json, int threads) {
  BoosterHandle h;
  LOUPE_XGB(XGBoosterCreate(nullptr, 0, &h));
  std::unique_ptr<Booster> booster(new Booster(h));
  LOUPE_XGB(XGBoosterLoadModelFromBuffer(h, json.data(), static_cast<bst_ulong>(json.size())));
  if (absl::Status s = SetParam(h, "nthread", absl::StrCat(threads)); !s.ok()) return s;
  if (absl::Status s = SetParam(h, "verbosity", "0"); !s.ok()) return s;
  return booster;
}

absl::StatusOr<std::vector<double>> Booster::PredictMargin(const Table& data) const {
  DMatrix dm;
  if (absl::Status s = dm.Build(data, {}); !s.ok()) return s;
  const bst_ulong* shape;
  bst_ulong dim;
  const float* out;
  LOUPE_XGB(XGBoosterPredictFromDMatrix(
      handle_, dm.handle_,
      R"({"type": 1, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": true})", &shape,
      &dim, &out));
  bst_ulong total = 1;
  for (bst_ulong d = 0; d < dim; ++d) total *= shape[d];
  return std::vector<double>(out, out + total);
}

absl::StatusOr<std::string> Booster::SaveJson() const {
  bst_ulong len;
  const char* bytes;
  LOUPE_XGB(XGBoosterSaveModelToBuffer(handle_, R"({"format": "json"})", &len, &bytes));
  return std::string(bytes, len);
}

absl::Status Booster::RefreshLeaves(const Table& data, const std::vector<float>& weights, const TrainOptions& o) {
  DMatrix dm;
  if (absl::Status s = dm.Build(data, weights); !s.ok()) return s;
  for (const auto& [name, value] : std::vector<std::pair<const char*, std::string>>{
           {"eta", absl::StrFormat("%.17g", o.learning_rate)},
           {"lambda", absl::StrFormat("%.17g", o.reg_lambda)},
           {"min_child_weight", absl::StrFormat("%.17g", o.min_child_weight)},
           {"nthread", absl::StrCat(o.threads)},
           {"process_type", "update"}, {"updater", "refresh"}, {"refresh_leaf", "1"}}) {
    if (absl::Status s = SetParam(handle_, name, value); !s.ok()) return s;
  }
  for (int64_t it = 0; it < o.n_estimators; ++it) LOUPE_XGB(XGBoosterUpdateOneIter(handle_, static_cast<int>(it), dm.handle_));
  return absl::OkStatus();
}

}  // namespace loupe::gbdt
