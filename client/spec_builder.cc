#include "client/spec_builder.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/duration.h"
#include "google/protobuf/util/json_util.h"
#include "workers/runtime/params.h"

namespace loupe::cli {

using loupe::v1::JobSpec;
using loupe::v1::JobState;

absl::StatusOr<JobSpec> ParseSpecJson(const std::string& json) {
  JobSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        std::string(status.message().data(), status.message().size()));
  }
  return spec;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitKeyValue(const std::string& text,
                                                                  const std::string& what) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", text, "': expected key=value"));
  }
  std::string key(absl::StripAsciiWhitespace(text.substr(0, eq)));
  if (key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "': empty key"));
  }
  return std::make_pair(std::move(key), std::string(text.substr(eq + 1)));
}

std::string UnknownKindMessage(const std::string& kind, const std::vector<std::string>& known) {
  std::string hint = loupe::SuggestName(kind, known);
  return absl::StrCat("unknown job kind '", kind, "'",
                      hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?"),
                      known.empty() ? "" : absl::StrCat(" (known kinds: ", absl::StrJoin(known, ", "), ")"));
}

absl::StatusOr<JobSpec> BuildJobSpec(const SubmitFlags& flags, const std::string& spec_json) {
  JobSpec spec;
  if (!absl::StripAsciiWhitespace(spec_json).empty()) {
    auto parsed = ParseSpecJson(spec_json);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("spec file: ", parsed.status().message()));
    }
    spec = *std::move(parsed);
  }

  // The kind: KIND selects it; a spec file that already selects another one
  // is a contradiction, not an override.
  const std::string file_field = loupe::SetSpecField(spec);
  std::string field = file_field;
  if (!flags.kind.empty()) {
    const std::string wanted = loupe::SpecFieldName(flags.kind);
    if (!file_field.empty() && file_field != wanted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the spec file sets parameters of '", file_field, "' but the command line asks for '",
          flags.kind, "'"));
    }
    field = wanted;
  }
  if (field.empty()) {
    return absl::InvalidArgumentError(
        "no job kind: give KIND (see 'loupe kinds') or a spec file that sets one");
  }
  auto params = loupe::MutableKindParams(&spec, field);
  if (!params.ok()) {
    return absl::NotFoundError(absl::StrCat("unknown job kind '",
                                            flags.kind.empty() ? field : flags.kind, "'"));
  }

  for (const std::string& p : flags.params) {
    auto kv = SplitKeyValue(p, "--param");
    if (!kv.ok()) return kv.status();
    absl::Status s = loupe::SetParamFromText(*params, kv->first, kv->second);
    if (!s.ok()) return absl::InvalidArgumentError(s.message());
  }

  if (flags.priority) spec.set_priority(*flags.priority);
  if (flags.max_attempts) {
    if (*flags.max_attempts < 0) {
      return absl::InvalidArgumentError("--max-attempts must not be negative");
    }
    spec.set_max_attempts(*flags.max_attempts);
  }
  if (!flags.time_limit.empty()) {
    auto d = ParseDurationFlag(flags.time_limit);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--time-limit: ", d.status().message()));
    *spec.mutable_time_limit() = ToProtoDuration(*d);
  }
  if (flags.idempotency_key) spec.set_idempotency_key(*flags.idempotency_key);
  for (const std::string& l : flags.labels) {
    auto kv = SplitKeyValue(l, "--label");
    if (!kv.ok()) return kv.status();
    (*spec.mutable_labels())[kv->first] = kv->second;
  }
  return spec;
}

absl::StatusOr<JobState> ParseJobStateFlag(const std::string& text) {
  std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  if (upper == "CANCELED") upper = "CANCELLED";
  std::vector<std::string> names;
  const auto* desc = loupe::v1::JobState_descriptor();
  for (int i = 0; i < desc->value_count(); ++i) {
    if (desc->value(i)->number() == 0) continue;
    names.push_back(absl::AsciiStrToLower(desc->value(i)->name()));
  }
  JobState state;
  if (upper != "JOB_STATE_UNSPECIFIED" && loupe::v1::JobState_Parse(upper, &state)) return state;
  std::string hint = loupe::SuggestName(absl::AsciiStrToLower(upper), names);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown job state '", text, "'",
      hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?"),
      " (states: ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace loupe::cli
