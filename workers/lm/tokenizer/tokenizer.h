// Hugging Face tokenizer.json tokenizers with a BPE model, encoding and
// decoding exactly as the Hugging Face `tokenizers` library does for:
//   - byte-level BPE (GPT-2 and its kin): ByteLevel pre-tokenizer with the
//     GPT-2 split pattern, ByteLevel decoder;
//   - SentencePiece-style BPE (Llama 2, Mistral): "▁" for spaces via
//     Prepend/Replace normalizers or the Metaspace pre-tokenizer, byte
//     fallback to <0xXX> tokens, Replace/ByteFallback/Fuse/Strip decoders;
//   - added and special tokens, and the post-processor's BOS/EOS.
// docs/tokenizers.md lists the supported components; anything else fails to
// load with an Unimplemented status that names it.
//
// Ownership: the factories return a Tokenizer the caller owns; it owns all
// of its parts and keeps no reference to its input.
// Thread safety: immutable after creation. Every method is const and may be
// called from many threads at once (the BPE word cache locks internally).
#ifndef LOUPE_WORKERS_LM_TOKENIZER_TOKENIZER_H_
#define LOUPE_WORKERS_LM_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/added_vocabulary.h"

namespace loupe::lm {

class BpeModel;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;

class Tokenizer {
 public:
  // Errors: NotFound (unreadable file), InvalidArgument (malformed JSON, a
  // missing or mistyped field, a merge or unk_token missing from the vocab),
  // Unimplemented (a component or option Loupe does not support, named).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJsonFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJsonString(absl::string_view json);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const nlohmann::json& json);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of text. add_special_tokens adds what the post-processor adds
  // (Llama: BOS first; GPT-2: nothing). Added tokens in the text (such as
  // "<|endoftext|>") always encode as their id. Ill-formed UTF-8 in text is
  // first replaced by U+FFFD, since Hugging Face only takes valid strings.
  std::vector<int32_t> Encode(absl::string_view text, bool add_special_tokens = true) const;

  // Text of ids; ids that are no token are skipped, and with
  // skip_special_tokens so are special added tokens. Bytes that do not form
  // UTF-8 come out as U+FFFD.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = true) const;

  // 1 + the largest id of the model or the added tokens (an embedding size).
  int32_t vocab_size() const;
  std::optional<int32_t> TokenToId(absl::string_view token) const;
  // The token's text as tokenizer.json holds it (byte-level alphabet for
  // GPT-2), or "" for an id that is no token.
  std::string IdToToken(int32_t id) const;
  bool IsSpecial(int32_t id) const;

  // The post-processor's leading / trailing special token if it adds one;
  // else, among added tokens, the first present of
  //   BOS: <s>, <|begin_of_text|>, <bos>, <|startoftext|>, <|endoftext|>
  //   EOS: </s>, <|end_of_text|>, <|endoftext|>, <eos>
  // (tokenizer.json itself does not name them).
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }

  const std::vector<AddedToken>& added_tokens() const { return added_.tokens(); }

  // The tokenizer.json text (Hugging Face's schema; loadable by
  // FromJsonString and by Hugging Face tokenizers).
  std::string ToJsonString() const;
  absl::Status SaveJson(const std::string& path) const;

 private:
  Tokenizer();
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJsonChecked(const nlohmann::json& json);

  // One stretch of text between added tokens, through normalizer,
  // normalized added tokens, pre-tokenizer and model.
  void EncodeSegment(absl::string_view segment, bool at_start, std::vector<int32_t>* ids) const;

  // Everything of the input file but model.vocab and model.merges, which the
  // model holds; written back by ToJsonString.
  nlohmann::json config_;
  AddedVocabulary added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::optional<int32_t> bos_id_, eos_id_;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_TOKENIZER_H_
