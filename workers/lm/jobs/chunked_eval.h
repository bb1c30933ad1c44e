// EvaluateTextInChunks: loss.h's EvaluateText, run a few windows at a time
// so that a long evaluation can report progress and be cancelled.
//
// EvaluateText scores a text in windows [end - w, end) whose ends are w,
// w + stride, w + 2·stride, … (the last clipped to n); each window scores the
// targets after the previous window's end. Calling it on the slice that
// starts where window k starts reproduces windows k, k+1, … exactly; of the
// first window's targets only those past window k-1's end are kept. So the
// result is EvaluateText's over the whole text, token for token (a test pins
// this), whatever the chunk size; with windows_per_chunk a multiple of
// options.batch_size even the batches are the same.
//
// Needs the model to itself during the call (as EvaluateText does).
#ifndef LOUPE_WORKERS_LM_JOBS_CHUNKED_EVAL_H_
#define LOUPE_WORKERS_LM_JOBS_CHUNKED_EVAL_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/loss.h"

namespace loupe::lm {

// Called after each chunk with windows done and the total; a non-OK status
// (e.g. CheckContinue's) stops the evaluation and is returned.
using EvalProgress = std::function<absl::Status(int64_t windows_done, int64_t windows_total)>;

// As EvaluateText(model, ids, n_bytes, options), with `windows_per_chunk`
// windows per EvaluateText call. options.window must be set (> 0): the
// caller decides the context, since the layout above depends on it.
absl::StatusOr<TextEval> EvaluateTextInChunks(CausalLM& model, absl::Span<const int64_t> ids, int64_t n_bytes,
                                              const EvalOptions& options, int64_t windows_per_chunk,
                                              const EvalProgress& progress);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_CHUNKED_EVAL_H_
