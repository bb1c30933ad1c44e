// bnn.cost: ACE and CPU64 of a binary network, per layer type, without
// training it. See docs/jobs/bnn.cost.md.
#ifndef LOUPE_WORKERS_BNN_BNN_COST_KIND_H_
#define LOUPE_WORKERS_BNN_BNN_COST_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeBnnCostKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_BNN_BNN_COST_KIND_H_
