// A tokenizer.json "normalizer": Prepend, Replace and Sequence of them (the
// SentencePiece-style Llama 2 / Mistral files use Prepend("▁") then
// Replace(" " -> "▁")). Any other kind is refused at load with an
// Unimplemented status naming it. Immutable; Normalize is const and
// thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_NORMALIZER_H_
#define LOUPE_WORKERS_LM_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/replace.h"

namespace loupe::lm {

class Normalizer {
 public:
  // j is the "normalizer" value; it must not be null (null means no
  // normalizer: the caller keeps none).
  static absl::StatusOr<std::unique_ptr<Normalizer>> FromJson(const nlohmann::json& j);

  // Applied to each piece of the input that lies between added tokens, as
  // Hugging Face does; so Prepend adds its text to every such piece.
  std::string Normalize(absl::string_view text) const;

 private:
  struct Step {
    bool is_prepend = false;
    std::string prepend;      // is_prepend
    Replacement replacement;  // !is_prepend
  };
  static absl::Status AddSteps(const nlohmann::json& j, std::vector<Step>* steps);

  std::vector<Step> steps_;  // a Sequence, flattened
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_NORMALIZER_H_
