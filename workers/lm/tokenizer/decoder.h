// A tokenizer.json "decoder": turns token strings back into text.
// Supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and
// Sequence of them (GPT-2 uses ByteLevel; Llama 2 / Mistral use
// Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)). Anything else is
// refused at load with an Unimplemented status naming it.
// Immutable; Decode is const and thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_DECODER_H_
#define LOUPE_WORKERS_LM_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/replace.h"

namespace loupe::lm {

class Decoder {
 public:
  // j is the "decoder" value and must not be null.
  static absl::StatusOr<std::unique_ptr<Decoder>> FromJson(const nlohmann::json& j);

  // The steps run in order over the list of token strings, which is then
  // concatenated.
  std::string Decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind;
    Replacement replacement;  // kReplace
    char32_t strip_char = ' ';
    int64_t strip_start = 0;
    int64_t strip_stop = 0;
    std::string meta;              // kMetaspace replacement character
    bool meta_strip_first = true;  // prepend_scheme other than "never"
  };
  static absl::Status AddSteps(const nlohmann::json& j, std::vector<Step>* steps);
  static void Apply(const Step& step, std::vector<std::string>* tokens);

  std::vector<Step> steps_;  // a Sequence, flattened
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_DECODER_H_
