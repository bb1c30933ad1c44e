#include "workers/lm/tokenizer/replace.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "workers/lm/tokenizer/json_fields.h"

namespace loupe::lm {

absl::StatusOr<Replacement> Replacement::FromJson(const nlohmann::json& j, absl::string_view where) {
  Replacement r;
  if (absl::Status s = GetString(j, "content", where, &r.content_); !s.ok()) return s;
  const auto pattern = j.find("pattern");
  if (pattern == j.end() || !pattern->is_object() || pattern->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer.json: ", where, ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}"));
  }
  const std::string kind = pattern->begin().key();
  const nlohmann::json& value = pattern->begin().value();
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: ", where, ": pattern.", kind, " must be a string"));
  }
  if (kind == "String") {
    r.literal_ = value.get<std::string>();
    if (r.literal_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": empty String pattern"));
    }
  } else if (kind == "Regex") {
    absl::StatusOr<std::unique_ptr<Regex>> regex = Regex::Compile(value.get<std::string>());
    if (!regex.ok()) {
      return absl::Status(regex.status().code(),
                          absl::StrCat("tokenizer.json: ", where, ": ", regex.status().message()));
    }
    r.regex_ = std::move(*regex);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: ", where, ": unknown pattern kind \"", kind, "\""));
  }
  return r;
}

std::string Replacement::Apply(absl::string_view text) const {
  if (regex_ == nullptr) {
    return absl::StrReplaceAll(text, {{absl::string_view(literal_), absl::string_view(content_)}});
  }
  std::vector<std::pair<size_t, size_t>> spans;
  regex_->FindAll(text, &spans);
  std::string out;
  size_t pos = 0;
  for (const auto& [begin, end] : spans) {
    out.append(text.data() + pos, begin - pos);
    out += content_;
    pos = end;
  }
  out.append(text.data() + pos, text.size() - pos);
  return out;
}

}  // namespace loupe::lm
