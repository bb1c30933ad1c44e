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

namespace loupe::lm {

// INVALID_ARGUMENT "<kind> parameter '<param>': <what>", the platform's form.
inline absl::Status ParamError(absl::string_view kind, absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kind, " parameter '", param, "': ", what));
}

// `status` with "<kind> parameter '<param>': " in front, code kept.
inline absl::Status ParamContext(absl::string_view kind, absl::string_view param, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(kind, " parameter '", param, "': ", status.message()));
}

inline ParamSpec NumberParam(const char* name, const char* help, const char* default_value, double min,
                             double max) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  p.min = min;
  p.max = max;
  return p;
}

inline ParamSpec ChoiceParam(const char* name, const char* help, const char* default_value,
                             std::vector<std::string> choices) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  p.choices = std::move(choices);
  return p;
}

// An input: dataset:ID, job:ID, job:ID/NAME or an allowed server path.
inline ParamSpec ReferenceParam(const char* name, const char* help) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.is_reference = true;
  return p;
}

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_PARAM_UTIL_H_
