#include "workers/lm/jobs/train_data.h"

#include <ATen/CPUGeneratorImpl.h>

namespace loupe::lm {

TokenWindows::TokenWindows(std::vector<int32_t> ids, int64_t window, uint64_t seed)
    : storage_(std::move(ids)),
      ids_(torch::from_blob(storage_.data(), {static_cast<int64_t>(storage_.size())}, torch::kInt)),
      ramp_(torch::arange(window, torch::kLong)),
      window_(window),
      gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  TORCH_CHECK(window >= 1 && ids_.size(0) >= window, "TokenWindows: need at least ", window, " tokens, got ",
              ids_.size(0));
}

torch::Tensor TokenWindows::Next(int64_t batch_size) {
  torch::Tensor starts = torch::randint(n_windows(), {batch_size, 1}, gen_, torch::kLong);
  return ids_.index({starts + ramp_}).to(torch::kLong);
}

}  // namespace loupe::lm
