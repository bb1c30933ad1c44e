// The whole sae.dark_matter report over prepared inputs: activation rows,
// the SAEs, and (when the rows came from a model) what the CE splice and the
// earlier-layer analysis need. The job kind (sae_dark_matter_kind.cc) loads
// these from parameters; tests build them directly.
//
// Analyses (numbering of the issue; definitions in Definitions()):
//   1 decomposition + norm predictability + baselines, per SAE
//   2 per-token error-norm scaling, every narrower/wider SAE pair
//   3 FVU-vs-width power law and the split of FVU, over all SAEs
//   4 TopK SAEs trained on error / linear / nonlinear error of the first SAE
//   5 CE splice of x̂, x̂ + linear, x̂ + nonlinear, per SAE (model only)
//   6 gradient pursuit with each token's L0, per SAE
//   7 earlier-layer prediction of the first SAE's error parts (model only)
// One random split of the rows (seeded) serves every fit.
//
// Not thread-safe in the sense that it uses LibTorch's intra-op threads as
// configured by the caller; the inputs are only read.
#ifndef LOUPE_WORKERS_DARK_MATTER_ANALYSIS_H_
#define LOUPE_WORKERS_DARK_MATTER_ANALYSIS_H_

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/dark_matter/error_sae.h"
#include "workers/dark_matter/sae_handle.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/hooks.h"

namespace loupe::dark_matter {

struct SpliceInputs {
  std::shared_ptr<lm::CausalLM> model;
  torch::Tensor sequences;  // [n_seq, T] int64
  lm::HookPoint hook;
  int64_t skip_positions = 1;
};

struct AnalysisInputs {
  torch::Tensor x;          // [n, d] float32
  torch::Tensor token_ids;  // [n] int64, or undefined
  std::vector<SaeHandle> saes;
  std::optional<SpliceInputs> splice;  // analysis 5
  // Analysis 7: predictors aligned with x's rows, in report order.
  std::vector<std::pair<std::string, torch::Tensor>> earlier;
  std::string earlier_note;  // why analysis 7 is absent, or how it was built
  std::string splice_note;
};

struct AnalysisOptions {
  double train_fraction = 0.5;
  uint64_t seed = 0;
  // Analysis 4; d_sae/k <= 0: the first SAE's width / rounded mean L0.
  ErrorSaeOptions error_sae;
  bool train_error_saes = true;
  int64_t pursuit_tokens = 2048;  // 0: skip analysis 6
  // (done, total) over the analyses' units of work; non-OK stops.
  std::function<absl::Status(int64_t, int64_t)> progress;
  std::function<void(const std::string&)> log;
};

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string Text() const;
};

struct AnalysisReport {
  nlohmann::ordered_json json;
  std::map<std::string, CsvTable> tables;  // file name → table
  std::map<std::string, double> results;   // headline numbers (job result fields)
};

// Every reported number's definition, keyed by its field name.
const nlohmann::ordered_json& Definitions();

absl::StatusOr<AnalysisReport> RunAnalyses(const AnalysisInputs& inputs, const AnalysisOptions& options);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_ANALYSIS_H_
