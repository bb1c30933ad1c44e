// How lm.train scores its held-out text and lm.eval scores a corpus: the same
// windows, batches and chunks, so that lm.eval of an lm.train model on the
// held-out text reproduces the train job's bits_per_byte exactly.
// Header-only constants.
#ifndef LOUPE_WORKERS_LM_JOBS_EVAL_SETTINGS_H_
#define LOUPE_WORKERS_LM_JOBS_EVAL_SETTINGS_H_

#include <cstdint>

namespace loupe::lm {

// Windows per forward pass (EvalOptions::batch_size).
inline constexpr int64_t kEvalBatch = 8;
// Windows per EvaluateTextInChunks call: between chunks the job checks for
// cancellation and reports progress. A multiple of kEvalBatch, so chunking
// does not change the batches.
inline constexpr int64_t kEvalWindowsPerChunk = 4 * kEvalBatch;
// The default window when none is asked for: min(the model's positions, this).
inline constexpr int64_t kMaxDefaultEvalWindow = 2048;

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_EVAL_SETTINGS_H_
