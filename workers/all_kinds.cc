// The job kinds this server offers. Adding a kind: one line here.
#include "workers/lm/jobs/lm_eval_kind.h"
#include "workers/lm/jobs/lm_train_kind.h"
#include "workers/noop/noop_kind.h"
#include "workers/runtime/registry.h"
#include "workers/sae/sae_train_kind.h"

namespace loupe {

absl::Status RegisterBuiltinKinds(KindRegistry& registry) {
  for (auto* make : {&MakeNoopKind, &MakeSaeTrainKind, &MakeLmTrainKind, &MakeLmEvalKind}) {
    if (absl::Status s = registry.Add(make()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace loupe
