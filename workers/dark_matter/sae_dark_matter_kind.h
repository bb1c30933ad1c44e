// sae.dark_matter: every analysis of "Decomposing the Dark Matter of Sparse
// Autoencoders" (Engels et al., TMLR 2025) for one activation source and one
// or more SAEs, as report.json plus CSV tables (analysis.h lists them).
// Stateless; thread-safe (JobKind's contract).
#ifndef LOUPE_WORKERS_DARK_MATTER_SAE_DARK_MATTER_KIND_H_
#define LOUPE_WORKERS_DARK_MATTER_SAE_DARK_MATTER_KIND_H_

#include <memory>

#include "workers/runtime/job_kind.h"

namespace loupe {

std::unique_ptr<JobKind> MakeSaeDarkMatterKind();

}  // namespace loupe

#endif  // LOUPE_WORKERS_DARK_MATTER_SAE_DARK_MATTER_KIND_H_
