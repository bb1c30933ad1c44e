// Parameters of job kinds: text parsing, defaults, bounds and descriptions.
//
// Shared by the server (validation, ListJobKinds) and the CLI (--param
// key=value), so both agree on names, types and error messages. Stateless
// functions; thread-safe.
#ifndef LOUPE_WORKERS_RUNTIME_PARAMS_H_
#define LOUPE_WORKERS_RUNTIME_PARAMS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "loupe/v1/jobs.pb.h"
#include "loupe/v1/service.pb.h"
#include "workers/runtime/job_kind.h"

namespace loupe {

// JobSpec's oneof field that carries kind `kind`: "sae.train" -> "sae_train".
std::string SpecFieldName(absl::string_view kind);

// The parameter message of `kind` inside `spec`, created if absent (which
// selects the kind). NOT_FOUND if JobSpec has no such field.
absl::StatusOr<google::protobuf::Message*> MutableKindParams(
    loupe::v1::JobSpec* spec, absl::string_view kind);
// The field name of the oneof case set in `spec`; empty if none.
std::string SetSpecField(const loupe::v1::JobSpec& spec);
// The parameter message set in `spec`, or nullptr.
const google::protobuf::Message* KindParams(const loupe::v1::JobSpec& spec);

// Sets one field of a parameter message from text. Unknown names are refused
// with the closest known name ("did you mean 'd_sae'?"); values must parse
// fully as the field's type ("64", "3e-4", "true", any string).
absl::Status SetParamFromText(google::protobuf::Message* params,
                              absl::string_view name, absl::string_view text);

// The candidate closest to `name` by edit distance, or empty when none is
// close enough to be a plausible misspelling.
std::string SuggestName(absl::string_view name,
                        const std::vector<std::string>& candidates);

// Fills unset fields that have defaults, then checks bounds and choices, then
// the kind's own Validate. Errors are INVALID_ARGUMENT and start with
// "<kind> parameter '<name>': ".
absl::Status ApplyDefaultsAndValidate(const JobKind& kind,
                                      google::protobuf::Message* params);

// The text form of a set field ("64", "0.0003", "synthetic").
std::string ParamValueText(const google::protobuf::Message& params,
                           absl::string_view name);

// Every reference named by a string field declared is_reference that is set
// and non-empty; a list field (is_reference_list) gives each of its
// comma-separated entries (trimmed, empty ones skipped).
std::vector<std::string> ReferenceValues(const JobKind& kind,
                                         const google::protobuf::Message& params);

loupe::v1::JobKindInfo DescribeKind(const JobKind& kind,
                                    const google::protobuf::Descriptor* params);

// Checks a kind's ParamSpec table against its proto message: every field
// declared once, defaults parse, choices only on strings. Registration calls
// it so a mistake fails at start-up and in tests, not at a user's submit.
absl::Status CheckParamTable(const JobKind& kind,
                             const google::protobuf::Descriptor* params);

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_PARAMS_H_
