// The job kinds this server offers. Adding a kind: one line here.
#include "workers/bnn/bnn_cost_kind.h"
#include "workers/bnn/bnn_train_kind.h"
#include "workers/dark_matter/sae_dark_matter_kind.h"
#include "workers/gbdt/gbdt_influence_kind.h"
#include "workers/lm/jobs/lm_eval_kind.h"
#include "workers/lm/jobs/lm_train_kind.h"
#include "workers/noop/noop_kind.h"
#include "workers/runtime/registry.h"
#include "workers/sae/sae_eval_kind.h"
#include "workers/sae/sae_train_kind.h"

namespace loupe {

absl::Status RegisterBuiltinKinds(KindRegistry& registry) {
  for (auto* make : {&MakeNoopKind, &MakeSaeTrainKind, &MakeSaeEvalKind, &MakeSaeDarkMatterKind,
                     &MakeLmTrainKind, &MakeLmEvalKind, &MakeGbdtInfluenceKind, &MakeBnnTrainKind, &MakeBnnCostKind}) {
    if (absl::Status s = registry.Add(make()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace loupe
