#include "workers/lm/tokenizer/json_fields.h"

#include "absl/strings/str_cat.h"

namespace loupe::lm {
namespace {

absl::Status WrongType(const char* key, absl::string_view where, const char* expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer.json: ", where, ": field \"", key, "\" must be ", expected));
}

}  // namespace

absl::Status RequireObject(const nlohmann::json& j, absl::string_view where) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", where, " must be an object"));
  }
  return absl::OkStatus();
}

absl::Status GetString(const nlohmann::json& obj, const char* key, absl::string_view where,
                       std::string* out) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: ", where, ": missing field \"", key, "\""));
  }
  if (!it->is_string()) return WrongType(key, where, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetInt(const nlohmann::json& obj, const char* key, absl::string_view where,
                    int64_t* out) {
  const auto it = obj.find(key);
  if (it == obj.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: ", where, ": missing field \"", key, "\""));
  }
  if (!it->is_number_integer()) return WrongType(key, where, "an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status GetOptionalBool(const nlohmann::json& obj, const char* key, absl::string_view where,
                             bool* out) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(key, where, "a boolean");
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status GetOptionalString(const nlohmann::json& obj, const char* key,
                               absl::string_view where, std::optional<std::string>* out) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(key, where, "a string or null");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetType(const nlohmann::json& obj, absl::string_view where, std::string* type) {
  if (absl::Status s = RequireObject(obj, where); !s.ok()) return s;
  return GetString(obj, "type", where, type);
}

absl::Status UnsupportedType(absl::string_view where, absl::string_view type,
                             absl::string_view supported) {
  return absl::UnimplementedError(absl::StrCat("tokenizer.json: ", where, " type \"", type,
                                               "\" is not supported (supported: ", supported, ")"));
}

}  // namespace loupe::lm
