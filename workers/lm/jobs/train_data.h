// TokenWindows: random training windows from a tokenized corpus.
//
// The corpus is tokenized once into one int32 vector, which the sampler takes
// over (no copy) and views as a tensor; each batch is
// batch_size windows of `window` consecutive tokens starting at uniformly
// random offsets (with replacement), gathered in one indexing op. Offsets come
// from the sampler's own CPU generator, so a seed gives the same batches
// whatever else runs in the process.
//
// Not thread-safe (the generator advances); one per training loop.
#ifndef LOUPE_WORKERS_LM_JOBS_TRAIN_DATA_H_
#define LOUPE_WORKERS_LM_JOBS_TRAIN_DATA_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace loupe::lm {

class TokenWindows {
 public:
  // ids.size() must be >= window >= 1.
  TokenWindows(std::vector<int32_t> ids, int64_t window, uint64_t seed);

  // int64 [batch_size, window] on the CPU.
  torch::Tensor Next(int64_t batch_size);

  int64_t n_tokens() const { return ids_.size(0); }
  // Distinct windows the corpus holds.
  int64_t n_windows() const { return ids_.size(0) - window_ + 1; }

 private:
  std::vector<int32_t> storage_;
  torch::Tensor ids_;     // int32 [n], a view of storage_
  torch::Tensor ramp_;    // int64 [window]: 0 .. window-1
  int64_t window_;
  at::Generator gen_;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_TRAIN_DATA_H_
