// Builds the JobSpec of `loupe submit` from a spec file, the KIND argument,
// --param key=value and the other flags, and parses the small flag values
// other commands share (key=value pairs, job states).
//
// Override order, later wins: spec file < KIND < --param < --priority,
// --max-attempts, --time-limit, --idempotency-key, --label (labels merge
// with the file's; the same key from the command line wins).
#ifndef LOUPE_CLIENT_SPEC_BUILDER_H_
#define LOUPE_CLIENT_SPEC_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "loupe/v1/jobs.pb.h"

namespace loupe::cli {

struct SubmitFlags {
  std::string kind;                  // may be empty when the spec file selects one
  std::vector<std::string> params;   // "key=value"
  std::string spec_file;             // path; "-" reads standard input
  std::optional<int32_t> priority;
  std::optional<int32_t> max_attempts;
  std::string time_limit;            // DURATION text; empty: keep the file's (or none)
  std::optional<std::string> idempotency_key;
  std::vector<std::string> labels;   // "key=value"
  bool watch = false;
};

// Parses a spec file's JSON (lowerCamel or proto field names; unknown fields
// are errors). INVALID_ARGUMENT with protobuf's message otherwise.
absl::StatusOr<loupe::v1::JobSpec> ParseSpecJson(const std::string& json);

// The spec from `flags` on top of `spec_json` (the file's content; empty for
// none). NOT_FOUND when this client's API has no kind named flags.kind (the
// caller then asks the server which kinds exist); INVALID_ARGUMENT for every
// other problem (misspelled parameter, bad value, file/KIND mismatch, …).
absl::StatusOr<loupe::v1::JobSpec> BuildJobSpec(const SubmitFlags& flags,
                                                const std::string& spec_json);

// "unknown job kind 'sae.trian'; did you mean 'sae.train'? (known kinds:
// noop, sae.train)".
std::string UnknownKindMessage(const std::string& kind, const std::vector<std::string>& known);

// "key=value" -> {key, value}; the value may contain '=' and be empty, the
// key may not be empty. `what` names the flag in errors ("--param").
absl::StatusOr<std::pair<std::string, std::string>> SplitKeyValue(const std::string& text,
                                                                  const std::string& what);

// "running", "RUNNING", "canceled", … -> the state; INVALID_ARGUMENT with the
// accepted names (and a suggestion) otherwise.
absl::StatusOr<loupe::v1::JobState> ParseJobStateFlag(const std::string& text);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_SPEC_BUILDER_H_
