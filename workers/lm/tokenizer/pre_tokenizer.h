// A tokenizer.json "pre_tokenizer": splits normalized text into the words the
// model encodes one by one. Supported: ByteLevel (GPT-2's split pattern and
// byte alphabet), Metaspace (SentencePiece's "▁"), Split (a regex or string
// with behavior Isolated or Removed) and Sequence of them; anything else is
// refused at load with an Unimplemented status naming it.
// Immutable; Split is const and thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_PRE_TOKENIZER_H_
#define LOUPE_WORKERS_LM_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/regex.h"

namespace loupe::lm {

class PreTokenizer {
 public:
  // j is the "pre_tokenizer" value and must not be null.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& j);

  // Calls emit with each non-empty word of one normalized segment (text
  // between added tokens), in order. at_start: the segment begins at offset 0
  // of the input, which Metaspace's prepend_scheme "first" asks about.
  // Words stream through the steps one at a time, so a long document never
  // becomes a vector of pieces.
  void Split(absl::string_view segment, bool at_start,
             absl::FunctionRef<void(absl::string_view word)> emit) const;

  // The same words, appended to a vector.
  void Split(absl::string_view segment, bool at_start, std::vector<std::string>* words) const;

 private:
  enum class Kind { kByteLevel, kMetaspace, kSplit };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind;
    // ByteLevel
    bool add_prefix_space = false;
    bool use_regex = true;
    // Metaspace
    std::string replacement;
    Prepend prepend = Prepend::kAlways;
    bool split = true;
    // Split
    std::shared_ptr<const Regex> regex;
    bool remove_matches = false;  // behavior Removed (else Isolated)
  };
  using Emit = absl::FunctionRef<void(absl::string_view, bool)>;

  static absl::Status AddSteps(const nlohmann::json& j, std::vector<Step>* steps);
  // Runs steps_[k..] on one piece; emit gets the final words.
  void Run(size_t k, absl::string_view text, bool at_start,
           absl::FunctionRef<void(absl::string_view)> emit) const;
  // One step on one piece: out(piece, piece_at_start) for each result.
  static void Apply(const Step& step, absl::string_view text, bool at_start, Emit out);

  std::vector<Step> steps_;  // a Sequence, flattened
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_PRE_TOKENIZER_H_
