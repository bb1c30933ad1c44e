// JobKind: the plugin interface every job kind implements.
//
// A kind is stateless and shared by all worker threads: Validate and Run are
// const and must be safe to call concurrently. Parameters arrive as the kind's
// own proto message (JobSpec's oneof field named after the kind, with '.'
// replaced by '_'), with defaults already filled in and declared bounds
// already checked (see params.h); Validate adds the checks a table cannot
// express, such as k <= d_sae.
#ifndef LOUPE_WORKERS_RUNTIME_JOB_KIND_H_
#define LOUPE_WORKERS_RUNTIME_JOB_KIND_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "workers/runtime/job_context.h"

namespace loupe {

// Declares one parameter: its name is the proto field's name, its type the
// field's type. A default is given in text form, as a user would type it.
struct ParamSpec {
  std::string name;
  std::string help;
  std::string default_value;  // empty: no default (the field is optional)
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> choices;  // allowed values of a string
  bool is_reference = false;         // names an input: dataset:, job:, path
  // With is_reference: the value is a comma-separated list of inputs, each
  // checked, waited for and access-controlled like a single one.
  bool is_reference_list = false;
};

class JobKind {
 public:
  virtual ~JobKind() = default;

  // "sae.train", "noop", …
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  // One entry per field of the parameter message, in display order.
  virtual std::vector<ParamSpec> params() const = 0;
  virtual std::vector<std::string> result_fields() const { return {}; }
  virtual std::vector<std::string> artifact_names() const { return {}; }

  // Checks beyond the declared bounds; errors are INVALID_ARGUMENT naming
  // the parameter and the problem.
  virtual absl::Status Validate(const google::protobuf::Message& params) const {
    (void)params;
    return absl::OkStatus();
  }
  // Runs one attempt. Returns OK on success, the context's status when it
  // stopped because of cancellation or the time limit, anything else on
  // failure (the message is shown to the user).
  virtual absl::Status Run(const google::protobuf::Message& params,
                           JobContext& ctx) const = 0;
};

// Adapts a kind written against its concrete parameter message.
template <typename Params>
class TypedJobKind : public JobKind {
 public:
  absl::Status Validate(const google::protobuf::Message& params) const final {
    return ValidateParams(static_cast<const Params&>(params));
  }
  absl::Status Run(const google::protobuf::Message& params,
                   JobContext& ctx) const final {
    return RunJob(static_cast<const Params&>(params), ctx);
  }

 protected:
  virtual absl::Status ValidateParams(const Params& params) const {
    (void)params;
    return absl::OkStatus();
  }
  virtual absl::Status RunJob(const Params& params, JobContext& ctx) const = 0;
};

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_JOB_KIND_H_
