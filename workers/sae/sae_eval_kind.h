// sae.eval: scores a trained SAE (Loupe's, SAELens's or Gemma Scope's) on an
// activation source with the metrics sae.train reports.
// Stateless; thread-safe (each Run loads its own model and data).
#ifndef LOUPE_WORKERS_SAE_SAE_EVAL_KIND_H_
#define LOUPE_WORKERS_SAE_SAE_EVAL_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeSaeEvalKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_SAE_SAE_EVAL_KIND_H_
