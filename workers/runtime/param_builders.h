// Builders for the rows of a kind's parameter table (JobKind::params()), so
// every kind declares numbers, choices, text and inputs the same way.
// Header-only; stateless.
#ifndef LOUPE_WORKERS_RUNTIME_PARAM_BUILDERS_H_
#define LOUPE_WORKERS_RUNTIME_PARAM_BUILDERS_H_

#include <string>
#include <utility>
#include <vector>

#include "workers/runtime/job_kind.h"

namespace loupe {

// A free-text parameter (empty default: optional, no value filled in).
inline ParamSpec TextParam(const char* name, const char* help, const char* default_value = "") {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  return p;
}

// A number within [min, max].
inline ParamSpec NumberParam(const char* name, const char* help, const char* default_value, double min,
                             double max) {
  ParamSpec p = TextParam(name, help, default_value);
  p.min = min;
  p.max = max;
  return p;
}

// A string that must be one of `choices` ("did you mean" on a near miss).
inline ParamSpec ChoiceParam(const char* name, const char* help, const char* default_value,
                             std::vector<std::string> choices) {
  ParamSpec p = TextParam(name, help, default_value);
  p.choices = std::move(choices);
  return p;
}

// An input: dataset:ID, job:ID, job:ID/NAME or an allowed server path.
inline ParamSpec ReferenceParam(const char* name, const char* help) {
  ParamSpec p = TextParam(name, help);
  p.is_reference = true;
  return p;
}

// A comma-separated list of inputs, each checked, waited for and guarded as
// a single ReferenceParam is.
inline ParamSpec ReferenceListParam(const char* name, const char* help) {
  ParamSpec p = ReferenceParam(name, help);
  p.is_reference_list = true;
  return p;
}

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_PARAM_BUILDERS_H_
