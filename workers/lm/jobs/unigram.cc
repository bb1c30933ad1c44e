#include "workers/lm/jobs/unigram.h"

#include <cmath>

namespace loupe::lm {

void UnigramModel::Count(absl::Span<const int32_t> ids) {
  for (int32_t id : ids) ++counts_[static_cast<size_t>(id)];
  total_ += static_cast<int64_t>(ids.size());
}

double UnigramModel::TotalBits(absl::Span<const int64_t> ids) const {
  const double log2_denominator = std::log2(static_cast<double>(total_ + vocab_size()));
  double bits = 0;
  for (int64_t id : ids) bits += log2_denominator - std::log2(static_cast<double>(counts_[id] + 1));
  return bits;
}

double UnigramModel::BitsPerByte(absl::Span<const int64_t> ids, int64_t n_bytes) const {
  return TotalBits(ids) / static_cast<double>(n_bytes);
}

}  // namespace loupe::lm
