// Typed access to tokenizer.json fields that turns every missing or mistyped
// field into an InvalidArgument status naming the component and the field.
// Stateless functions; thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_JSON_FIELDS_H_
#define LOUPE_WORKERS_LM_TOKENIZER_JSON_FIELDS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace loupe::lm {

// `where` names the component in messages, e.g. "pre_tokenizer (ByteLevel)".
absl::Status RequireObject(const nlohmann::json& j, absl::string_view where);

// Required fields.
absl::Status GetString(const nlohmann::json& obj, const char* key, absl::string_view where,
                       std::string* out);
absl::Status GetInt(const nlohmann::json& obj, const char* key, absl::string_view where,
                    int64_t* out);

// Optional fields: absent or null leaves *out as it was.
absl::Status GetOptionalBool(const nlohmann::json& obj, const char* key, absl::string_view where,
                             bool* out);
absl::Status GetOptionalString(const nlohmann::json& obj, const char* key,
                               absl::string_view where, std::optional<std::string>* out);

// The "type" field of a component object.
absl::Status GetType(const nlohmann::json& obj, absl::string_view where, std::string* type);

// Status for a component type Loupe does not implement.
absl::Status UnsupportedType(absl::string_view where, absl::string_view type,
                             absl::string_view supported);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_JSON_FIELDS_H_
