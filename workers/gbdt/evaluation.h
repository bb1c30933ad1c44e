// The paper's evaluations of an influence ranking, each by retraining
// XGBoost with the same parameters and seed on edited training data:
//   remove / relabel / poison  the top p% most helpful rows for single test
//                              rows (p ∈ {0.1, 0.5, 1, 1.5, 2}), loss of that
//                              row vs. editing random rows;
//   test_set                   remove the top p% by influence summed over one
//                              half of the test rows; loss/accuracy/AUC on
//                              the other half (p ∈ {0, 5, …, 50});
//   noise                      flip noise_fraction of the labels, rank by
//                              influence on half the test rows (most harmful
//                              first), share of flipped rows in the top p%
//                              (p ∈ {0, 5, …, 30}) and test metrics after
//                              fixing them;
//   agreement                  Pearson, Spearman and Jaccard of the top 10%
//                              between methods, averaged over test rows.
// Each produces a CSV table, a JSON document for plots and summary numbers.
// Functions are re-entrant; they parallelise over `threads`.
#ifndef LOUPE_WORKERS_GBDT_EVALUATION_H_
#define LOUPE_WORKERS_GBDT_EVALUATION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/gbdt/explain.h"

namespace loupe::gbdt {

struct EvalOptions {
  std::string method;                 // the ranked method's name
  int64_t test_points = 100;          // remove/relabel/poison
  double noise_fraction = 0.4;
  std::vector<std::string> compare_methods;
};

struct EvalReport {
  std::string name;                   // "remove", "agreement", …
  std::string csv;
  std::string json;
  std::map<std::string, double> summary;
};

const std::vector<std::string>& EvaluationNames();  // remove relabel poison test_set noise agreement

// `in` describes the explained model; `influence` is `method`'s matrix on it.
absl::StatusOr<EvalReport> RunEvaluation(const std::string& name, const ExplainInput& in,
                                         const InfluenceMatrix& influence, const EvalOptions& options);

// Rank statistics (exposed for tests).
double Pearson(const std::vector<double>& a, const std::vector<double>& b);
double Spearman(const std::vector<double>& a, const std::vector<double>& b);
double JaccardTop(const std::vector<double>& a, const std::vector<double>& b, double fraction);
double Auc(const std::vector<double>& score, const std::vector<double>& label);

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_EVALUATION_H_
