#include "workers/lm/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/json_fields.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

// Unicode \w as Rust's regex crate has it (Alphabetic, marks, decimal
// digits, connector punctuation, joiners).
constexpr char kWordCharPattern[] = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])";

// Start of the last character of s (s non-empty, valid UTF-8).
size_t LastCharStart(absl::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

char32_t CharAt(absl::string_view s, size_t i) {
  const size_t n = Utf8SequenceLength(s, i);
  return n == 0 ? 0xFFFD : DecodeUtf8At(s, i, n);
}

}  // namespace

nlohmann::json AddedToken::ToJson() const {
  return {{"id", id},         {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip}, {"rstrip", rstrip},   {"normalized", normalized},
          {"special", special}};
}

absl::StatusOr<AddedVocabulary> AddedVocabulary::FromJson(const nlohmann::json& j) {
  AddedVocabulary v;
  if (!j.is_null() && !j.is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: \"added_tokens\" must be an array");
  }
  auto raw = std::make_shared<Buckets>();
  auto normalized = std::make_shared<Buckets>();
  if (j.is_array()) {
    for (const nlohmann::json& item : j) {
      const std::string where = absl::StrCat("added_tokens[", v.tokens_.size(), "]");
      if (absl::Status s = RequireObject(item, where); !s.ok()) return s;
      AddedToken t;
      int64_t id = 0;
      if (absl::Status s = GetInt(item, "id", where, &id); !s.ok()) return s;
      if (id < 0 || id > INT32_MAX) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", where, ": bad id ", id));
      }
      t.id = static_cast<int32_t>(id);
      if (absl::Status s = GetString(item, "content", where, &t.content); !s.ok()) return s;
      if (t.content.empty() || !IsValidUtf8(t.content)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: ", where, ": content must be non-empty UTF-8"));
      }
      for (auto [key, field] : {std::pair{"single_word", &t.single_word}, {"lstrip", &t.lstrip},
                                {"rstrip", &t.rstrip}, {"normalized", &t.normalized},
                                {"special", &t.special}}) {
        if (absl::Status s = GetOptionalBool(item, key, where, field); !s.ok()) return s;
      }
      if (v.by_id_.contains(t.id) || v.by_content_.contains(t.content)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokenizer.json: ", where, ": duplicate added token \"", t.content, "\" (id ", t.id, ")"));
      }
      const int index = static_cast<int>(v.tokens_.size());
      v.by_id_[t.id] = index;
      v.by_content_[t.content] = index;
      (t.normalized ? *normalized : *raw)[static_cast<uint8_t>(t.content[0])].push_back(index);
      v.tokens_.push_back(std::move(t));
    }
  }
  for (Buckets* buckets : {raw.get(), normalized.get()}) {
    for (std::vector<int>& bucket : *buckets) {
      std::stable_sort(bucket.begin(), bucket.end(), [&](int a, int b) {
        return v.tokens_[a].content.size() > v.tokens_[b].content.size();
      });
    }
  }
  v.raw_buckets_ = std::move(raw);
  v.normalized_buckets_ = std::move(normalized);
  absl::StatusOr<std::unique_ptr<Regex>> word_char = Regex::Compile(kWordCharPattern);
  if (!word_char.ok()) return word_char.status();
  v.word_char_ = std::move(*word_char);
  return v;
}

void AddedVocabulary::Split(absl::string_view text, bool normalized_tokens,
                            std::vector<Piece>* pieces) const {
  const Buckets& buckets = normalized_tokens ? *normalized_buckets_ : *raw_buckets_;
  const auto is_word_char = [&](size_t i) {
    const size_t n = Utf8SequenceLength(text, i);
    return word_char_->FullMatch(text.substr(i, n == 0 ? 1 : n));
  };
  size_t emitted = 0;  // end of the last piece
  size_t i = 0;
  while (i < text.size()) {
    const std::vector<int>& bucket = buckets[static_cast<uint8_t>(text[i])];
    const AddedToken* match = nullptr;
    for (const int index : bucket) {
      const std::string& c = tokens_[index].content;
      if (text.compare(i, c.size(), c) == 0) {
        match = &tokens_[index];  // longest first, so the first hit is the longest
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + match->content.size();
    i = stop;  // matches do not overlap, a rejected one included
    if (match->single_word) {
      const bool word_before = start > 0 && is_word_char(LastCharStart(text.substr(0, start)));
      const bool word_after = stop < text.size() && is_word_char(stop);
      if (word_before || word_after) continue;
    }
    if (match->lstrip) {
      while (start > emitted) {
        const size_t prev = LastCharStart(text.substr(0, start));
        if (!IsUnicodeWhiteSpace(CharAt(text, prev))) break;
        start = prev;
      }
    }
    if (match->rstrip) {
      while (stop < text.size() && IsUnicodeWhiteSpace(CharAt(text, stop))) {
        stop += std::max<size_t>(1, Utf8SequenceLength(text, stop));
      }
      i = stop;
    }
    if (start > emitted) pieces->push_back({emitted, start, -1});
    pieces->push_back({start, stop, match->id});
    emitted = stop;
  }
  if (emitted < text.size()) pieces->push_back({emitted, text.size(), -1});
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::FindByContent(absl::string_view content) const {
  const auto it = by_content_.find(content);
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace loupe::lm
