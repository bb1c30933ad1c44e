// gbdt.influence: trains (or loads) an XGBoost ensemble, estimates how much
// each training row helps or hurts each test row with the chosen method, and
// optionally evaluates the ranking by retraining. See
// docs/jobs/gbdt.influence.md.
#ifndef LOUPE_WORKERS_GBDT_GBDT_INFLUENCE_KIND_H_
#define LOUPE_WORKERS_GBDT_GBDT_INFLUENCE_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeGbdtInfluenceKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_GBDT_GBDT_INFLUENCE_KIND_H_
