// sae.train: trains a sparse autoencoder and writes it in SAELens's layout.
// Stateless; thread-safe (each Run builds its own model and data).
#ifndef LOUPE_WORKERS_SAE_SAE_TRAIN_KIND_H_
#define LOUPE_WORKERS_SAE_SAE_TRAIN_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeSaeTrainKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_SAE_SAE_TRAIN_KIND_H_
