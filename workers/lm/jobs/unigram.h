// UnigramModel: the baseline lm.train compares its model against — each
// token drawn independently from its training-split frequency.
//
// Probabilities use add-one (Laplace) smoothing over the whole vocabulary,
//   p(t) = (count(t) + 1) / (N + V),
// so a token never seen in training still has a finite cost. Scored in bits
// per byte (the same units as loss.h's model figures), it is what a model
// that ignores context would reach with this tokenizer.
//
// A value type; not thread-safe while counting, read-only use is.
#ifndef LOUPE_WORKERS_LM_JOBS_UNIGRAM_H_
#define LOUPE_WORKERS_LM_JOBS_UNIGRAM_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace loupe::lm {

class UnigramModel {
 public:
  // Ids must lie in [0, vocab_size).
  explicit UnigramModel(int64_t vocab_size) : counts_(static_cast<size_t>(vocab_size), 0) {}

  void Count(absl::Span<const int32_t> ids);
  // -log2 p(ids), summed.
  double TotalBits(absl::Span<const int64_t> ids) const;
  // TotalBits(ids) / n_bytes.
  double BitsPerByte(absl::Span<const int64_t> ids, int64_t n_bytes) const;

  int64_t total() const { return total_; }
  int64_t vocab_size() const { return static_cast<int64_t>(counts_.size()); }

 private:
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_UNIGRAM_H_
