// The progress line of `loupe watch`:
//   [#####-----] 1234/3000 41% fvu=0.0123 l0=31.8 eta 12s
#ifndef LOUPE_CLIENT_PROGRESS_BAR_H_
#define LOUPE_CLIENT_PROGRESS_BAR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace loupe::cli {

// Renders the progress line to fit in `width` columns (it stays below
// `width` so a terminal never wraps it). The bar takes a third of the width,
// 10 to 30 columns, whatever else is shown; metrics (sorted by name) are
// dropped from the end when they do not fit;
// the eta is shown when given. With an unknown total (0) there is no bar:
// "step 1234 fvu=0.0123". Pure: same inputs, same string.
std::string RenderProgressBar(int64_t step, int64_t total,
                              const std::map<std::string, double>& metrics,
                              std::optional<absl::Duration> eta, int width);

// Estimates time to completion from the step rate since the first
// observation of the current attempt (a new attempt, or a step going
// backwards, starts over).
class EtaEstimator {
 public:
  void Observe(absl::Time time, int64_t step, int attempt);
  // Empty until two observations with progress between them.
  std::optional<absl::Duration> Eta(int64_t total) const;

 private:
  bool started_ = false;
  int attempt_ = 0;
  absl::Time t0_, last_t_;
  int64_t step0_ = 0, last_step_ = 0;
};

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_PROGRESS_BAR_H_
