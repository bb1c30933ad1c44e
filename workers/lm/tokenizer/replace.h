// The Replace step shared by tokenizer.json normalizers and decoders:
// {"pattern": {"String": s} | {"Regex": r}, "content": c} replaces every
// non-overlapping occurrence, left to right, with c (no group references).
// Immutable; Apply is const and thread-safe. Copies share the compiled regex.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_REPLACE_H_
#define LOUPE_WORKERS_LM_TOKENIZER_REPLACE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/regex.h"

namespace loupe::lm {

class Replacement {
 public:
  static absl::StatusOr<Replacement> FromJson(const nlohmann::json& j, absl::string_view where);

  std::string Apply(absl::string_view text) const;

 private:
  std::string literal_;                 // used when regex_ is null
  std::shared_ptr<const Regex> regex_;
  std::string content_;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_REPLACE_H_
