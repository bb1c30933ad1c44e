// Encoding, decoding and lookups; loading and saving are in tokenizer_json.cc.
#include "workers/lm/tokenizer/tokenizer.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "workers/lm/tokenizer/bpe_model.h"
#include "workers/lm/tokenizer/decoder.h"
#include "workers/lm/tokenizer/normalizer.h"
#include "workers/lm/tokenizer/post_processor.h"
#include "workers/lm/tokenizer/pre_tokenizer.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::EncodeSegment(absl::string_view segment, bool at_start,
                              std::vector<int32_t>* ids) const {
  std::string normalized_storage;
  absl::string_view normalized = segment;
  if (normalizer_) {
    normalized_storage = normalizer_->Normalize(segment);
    normalized = normalized_storage;
  }
  std::vector<AddedVocabulary::Piece> pieces;
  added_.Split(normalized, /*normalized_tokens=*/true, &pieces);
  for (const AddedVocabulary::Piece& p : pieces) {
    if (p.id >= 0) {
      ids->push_back(p.id);
      continue;
    }
    const absl::string_view text = normalized.substr(p.begin, p.end - p.begin);
    if (pre_tokenizer_) {
      pre_tokenizer_->Split(text, at_start && p.begin == 0,
                            [&](absl::string_view word) { model_->Tokenize(word, ids); });
    } else {
      model_->Tokenize(text, ids);
    }
  }
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!IsValidUtf8(text)) {
    repaired = Utf8Lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  // Non-normalized added tokens are cut from the raw text first; each
  // stretch between them is then normalized on its own (Hugging Face's
  // order, which is why Prepend("▁") applies to every stretch).
  std::vector<AddedVocabulary::Piece> pieces;
  added_.Split(text, /*normalized_tokens=*/false, &pieces);
  for (const AddedVocabulary::Piece& p : pieces) {
    if (p.id >= 0) {
      ids.push_back(p.id);
    } else {
      EncodeSegment(text.substr(p.begin, p.end - p.begin), p.begin == 0, &ids);
    }
  }
  if (post_processor_) return post_processor_->Apply(std::move(ids), add_special_tokens);
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (const AddedToken* t = added_.FindById(id)) {
      if (!(skip_special_tokens && t->special)) tokens.push_back(t->content);
    } else if (const std::string* token = model_->IdToToken(id)) {
      tokens.push_back(*token);
    }
  }
  if (decoder_) return decoder_->Decode(std::move(tokens));
  return absl::StrJoin(tokens, " ");  // Hugging Face's choice without a decoder
}

int32_t Tokenizer::vocab_size() const {
  int32_t size = model_->size();
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

std::optional<int32_t> Tokenizer::TokenToId(absl::string_view token) const {
  if (const AddedToken* t = added_.FindByContent(token)) return t->id;
  return model_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* t = added_.FindById(id)) return t->content;
  const std::string* token = model_->IdToToken(id);
  return token == nullptr ? std::string() : *token;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* t = added_.FindById(id);
  return t != nullptr && t->special;
}

}  // namespace loupe::lm
