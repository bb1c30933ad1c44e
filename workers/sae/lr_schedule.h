// The learning-rate schedule both SAE trainers use: linear warm-up over
// `warmup_steps`, constant, then linear decay over the last
// floor(decay_fraction * total_steps) steps. Header-only; stateless.
#ifndef LOUPE_WORKERS_SAE_LR_SCHEDULE_H_
#define LOUPE_WORKERS_SAE_LR_SCHEDULE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace loupe::sae {

// The rate at 1-based `step`.
inline double WarmupDecayLearningRate(double lr, int64_t warmup_steps, double decay_fraction, int64_t total_steps,
                                      int64_t step) {
  double scale = 1.0;
  if (warmup_steps > 0 && step <= warmup_steps) {
    scale = static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  const int64_t decay_steps = static_cast<int64_t>(std::floor(decay_fraction * total_steps));
  const int64_t decay_start = total_steps - decay_steps;
  if (decay_steps > 0 && step > decay_start) {
    // Reaches lr / decay_steps on the last step rather than 0, so every step
    // still learns something.
    scale = std::min(scale, static_cast<double>(total_steps - step + 1) / static_cast<double>(decay_steps));
  }
  return lr * scale;
}

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_LR_SCHEDULE_H_
