// noop: a job kind that does (almost) nothing, for tests and benchmarks of the
// platform itself. Stateless; thread-safe.
#ifndef LOUPE_WORKERS_NOOP_NOOP_KIND_H_
#define LOUPE_WORKERS_NOOP_NOOP_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeNoopKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_NOOP_NOOP_KIND_H_
