// lm.eval: bits per byte and perplexity of a causal language model (a
// Hugging Face directory: an lm.train job's artifacts or a server path) on a
// text corpus. docs/jobs/lm.eval.md describes parameters and results.
//
// The kind is stateless; Validate and Run are safe to call concurrently.
#ifndef LOUPE_WORKERS_LM_JOBS_LM_EVAL_KIND_H_
#define LOUPE_WORKERS_LM_JOBS_LM_EVAL_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeLmEvalKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_LM_JOBS_LM_EVAL_KIND_H_
