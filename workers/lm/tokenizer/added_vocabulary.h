// The "added_tokens" of a tokenizer.json: strings that are cut out of the
// input before normalization and encoded as their own id (special tokens such
// as <s>, <|endoftext|>, and any user-added tokens), with Hugging Face's
// matching rules: leftmost-longest, single_word, lstrip, rstrip, and
// normalized tokens matched against normalized text.
// Immutable after FromJson; all methods are const and thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_ADDED_VOCABULARY_H_
#define LOUPE_WORKERS_LM_TOKENIZER_ADDED_VOCABULARY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/regex.h"

namespace loupe::lm {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;  // only matches with no word character either side
  bool lstrip = false;       // swallows whitespace on its left
  bool rstrip = false;       // swallows whitespace on its right
  bool normalized = true;    // matched in normalized rather than raw text
  bool special = false;      // dropped by Decode(skip_special_tokens=true)

  nlohmann::json ToJson() const;
};

class AddedVocabulary {
 public:
  // j: the "added_tokens" array (null counts as empty).
  static absl::StatusOr<AddedVocabulary> FromJson(const nlohmann::json& j);

  // A piece of text: an added token (id >= 0) or plain text (id == -1).
  struct Piece {
    size_t begin;
    size_t end;
    int32_t id;
  };
  // Cuts text at the added tokens whose `normalized` flag equals
  // normalized_tokens. Empty plain pieces are left out.
  void Split(absl::string_view text, bool normalized_tokens, std::vector<Piece>* pieces) const;

  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(absl::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Token indices per first byte, longest first, for one matching pass.
  using Buckets = std::array<std::vector<int>, 256>;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, int> by_id_;
  absl::flat_hash_map<std::string, int> by_content_;
  std::shared_ptr<const Buckets> raw_buckets_, normalized_buckets_;
  // Rust regex's \w, which single_word tests against.
  std::shared_ptr<const Regex> word_char_;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_ADDED_VOCABULARY_H_
