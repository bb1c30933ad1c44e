// A tokenizer.json "post_processor": adds special tokens around an encoded
// sequence when Encode is asked to (add_special_tokens). Supported:
// TemplateProcessing (its "single" template), BertProcessing and
// RobertaProcessing (cls ... sep), ByteLevel (adds nothing: it only trims
// offsets, which Loupe does not report) and Sequence of them. Anything else is
// refused at load with an Unimplemented status naming it.
// Immutable; Apply is const and thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_POST_PROCESSOR_H_
#define LOUPE_WORKERS_LM_TOKENIZER_POST_PROCESSOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loupe::lm {

class PostProcessor {
 public:
  // j is the "post_processor" value and must not be null.
  static absl::StatusOr<std::unique_ptr<PostProcessor>> FromJson(const nlohmann::json& j);

  // The ids with the template's special tokens added (add_special_tokens)
  // or unchanged.
  std::vector<int32_t> Apply(std::vector<int32_t> ids, bool add_special_tokens) const;

  // The single special token placed before / after the sequence, if exactly
  // one is: the natural BOS / EOS of this tokenizer.
  std::optional<int32_t> leading_id() const;
  std::optional<int32_t> trailing_id() const;

 private:
  // One template, flattened: ids before and after the sequence. A Sequence
  // of processors nests these, so they concatenate.
  std::vector<int32_t> before_, after_;

  static absl::Status AddTemplate(const nlohmann::json& j, std::vector<int32_t>* before,
                                  std::vector<int32_t>* after);
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_POST_PROCESSOR_H_
