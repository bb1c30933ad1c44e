// bnn.train: trains PokeBNN-style binary networks (default: the small
// PokeBNN on Debian's Fashion-MNIST), optionally distilled from a float
// teacher and swept over the activation clip bound B, and evaluates them
// fake-quantized and with real bit-packed XNOR-popcount kernels.
// See docs/jobs/bnn.train.md.
#ifndef LOUPE_WORKERS_BNN_BNN_TRAIN_KIND_H_
#define LOUPE_WORKERS_BNN_BNN_TRAIN_KIND_H_

#include <memory>
#include <string>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeBnnTrainKind();

namespace bnn {
// Where the default data lives; tests point it elsewhere (not thread-safe:
// set before any job runs).
void SetDefaultDataDirForTesting(const std::string& dir);
}  // namespace bnn

}  // namespace loupe

#endif  // LOUPE_WORKERS_BNN_BNN_TRAIN_KIND_H_
