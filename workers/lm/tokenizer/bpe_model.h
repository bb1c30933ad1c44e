// The BPE model of a tokenizer.json: vocabulary, merges applied by rank
// (lowest first; at equal rank, leftmost first), byte fallback to <0xXX>
// tokens and unknown-token handling, as Hugging Face's BPE does.
//
// Immutable after Create, apart from a bounded cache of encoded words that a
// mutex guards: Tokenize is const and thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_BPE_MODEL_H_
#define LOUPE_WORKERS_LM_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace loupe::lm {

struct BpeOptions {
  std::optional<std::string> unk_token;  // characters with no token become this
  bool fuse_unk = false;                 // consecutive unknowns share one unk
  bool byte_fallback = false;            // unknown characters as <0xXX> tokens
  bool ignore_merges = false;            // a word that is a token maps to it whole
};

class BpeModel {
 public:
  // vocab: (token, id) pairs; ids must be distinct and >= 0, gaps allowed.
  // merges: pairs of tokens in rank order; both parts and their
  // concatenation must be in vocab.
  static absl::StatusOr<std::unique_ptr<BpeModel>> Create(
      std::vector<std::pair<std::string, int32_t>> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Appends the ids of one pre-tokenized word.
  void Tokenize(absl::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(absl::string_view token) const;
  // nullptr for an id the vocabulary does not hold.
  const std::string* IdToToken(int32_t id) const;
  // 1 + the largest id.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }
  // Number of tokens (differs from size() when ids have gaps).
  size_t token_count() const { return vocab_.size(); }

  const BpeOptions& options() const { return options_; }
  // Merges as (left id, right id), in rank order.
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  BpeModel() = default;
  // The initial symbols of a word: one per character, or its <0xXX> bytes,
  // or unk.
  void InitialSymbols(absl::string_view word, std::vector<int32_t>* symbols) const;
  void MergeSymbols(std::vector<int32_t>* symbols) const;
  // BPE on one word (or one independent stretch of it), through the cache.
  void TokenizeCached(absl::string_view word, std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merge_map_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::array<int32_t, 256> byte_ids_;  // -1 where <0xXX> is not in vocab
  std::optional<int32_t> unk_id_;
  BpeOptions options_;

  // SentencePiece-style files have no pre-tokenizer: a whole text is one
  // word, merged in one long pass. If no token holds "▁" after another
  // character (checked at load), no merge can join "x" to a following "▁",
  // so the word splits before each such "▁" into stretches that merge alone,
  // with the same result, and short stretches are cacheable.
  bool split_before_meta_ = false;

  // Encoded words, for words up to kMaxCachedWordBytes; stops growing at
  // kCacheCapacity entries (text keeps its common words early).
  static constexpr size_t kMaxCachedWordBytes = 256;
  static constexpr size_t kCacheCapacity = 100000;
  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_BPE_MODEL_H_
