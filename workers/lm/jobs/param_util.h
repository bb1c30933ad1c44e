// Small helpers the LM kinds share for their parameter tables and errors.
// Header-only, stateless.
#ifndef LOUPE_WORKERS_LM_JOBS_PARAM_UTIL_H_
#define LOUPE_WORKERS_LM_JOBS_PARAM_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "workers/runtime/job_kind.h"
#include "workers/runtime/param_builders.h"

namespace loupe::lm {

// INVALID_ARGUMENT "<kind> parameter '<param>': <what>", the platform's form.
inline absl::Status ParamError(absl::string_view kind, absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kind, " parameter '", param, "': ", what));
}

// `status` with "<kind> parameter '<param>': " in front, code kept.
inline absl::Status ParamContext(absl::string_view kind, absl::string_view param, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(kind, " parameter '", param, "': ", status.message()));
}

// The shared table builders, also under this namespace for existing callers.
using ::loupe::ChoiceParam;
using ::loupe::NumberParam;
using ::loupe::ReferenceParam;

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_PARAM_UTIL_H_
