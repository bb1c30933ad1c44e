// lm.train: trains a small decoder-only language model (GPT-2 or Llama
// architecture) on a text corpus and saves it as a Hugging Face model
// directory; reports held-out bits per byte beside a unigram baseline.
// docs/jobs/lm.train.md describes parameters, results and artifacts.
//
// The kind is stateless (all state lives in RunJob's locals); Validate and
// Run are safe to call concurrently.
#ifndef LOUPE_WORKERS_LM_JOBS_LM_TRAIN_KIND_H_
#define LOUPE_WORKERS_LM_JOBS_LM_TRAIN_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeLmTrainKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_LM_JOBS_LM_TRAIN_KIND_H_
