#include "workers/lm/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/byte_level.h"
#include "workers/lm/tokenizer/pre_tokenizer.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;

uint64_t Key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t Left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t Right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

json ByteLevelComponent() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t freq;
};

// Most frequent pair first; at equal counts the smaller (left, right) ids,
// so that training never depends on hash order.
struct Candidate {
  int64_t count;
  uint64_t pair;
  bool operator<(const Candidate& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

class Trainer {
 public:
  explicit Trainer(const BpeTrainerOptions& options) : options_(options) {}

  absl::StatusOr<std::unique_ptr<Tokenizer>> Run(absl::Span<const std::string> texts) {
    for (const std::string& s : options_.special_tokens) AddToken(s);
    // The 256 byte characters, in code point order (Hugging Face's order
    // for the initial alphabet, and GPT-2's).
    std::vector<std::pair<char32_t, int>> alphabet;
    for (int b = 0; b < 256; ++b) alphabet.emplace_back(ByteLevelCodePoint(static_cast<uint8_t>(b)), b);
    std::sort(alphabet.begin(), alphabet.end());
    for (const auto& [cp, b] : alphabet) AddToken(ByteLevelChar(static_cast<uint8_t>(b)));

    if (absl::Status s = CountWords(texts); !s.ok()) return s;
    CountPairs();
    while (static_cast<int32_t>(tokens_.size()) < options_.vocab_size && MergeBest()) {
    }
    return Build();
  }

 private:
  int32_t AddToken(const std::string& token) {
    const auto it = ids_.find(token);
    if (it != ids_.end()) return it->second;
    const int32_t id = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
    ids_.emplace(token, id);
    return id;
  }

  absl::Status CountWords(absl::Span<const std::string> texts) {
    absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::FromJson(ByteLevelComponent());
    if (!pre.ok()) return pre.status();
    absl::flat_hash_map<std::string, int64_t> counts;
    const auto count = [&counts](absl::string_view word) {
      const auto it = counts.find(word);
      if (it != counts.end()) {
        ++it->second;
      } else {
        counts.emplace(word, 1);
      }
    };
    for (const std::string& text : texts) {
      if (IsValidUtf8(text)) {
        (*pre)->Split(text, /*at_start=*/true, count);
      } else {
        (*pre)->Split(Utf8Lossy(text), /*at_start=*/true, count);
      }
    }
    // Sorted, so word indices (and so everything after) are reproducible.
    std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end());
    words_.reserve(sorted.size());
    for (const auto& [text, freq] : sorted) {
      Word w{{}, freq};
      ForEachUtf8Char(text, [&](absl::string_view ch) { w.symbols.push_back(ids_.at(std::string(ch))); });
      words_.push_back(std::move(w));
    }
    return absl::OkStatus();
  }

  void CountPairs() {
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) {
      const Word& word = words_[w];
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        const uint64_t k = Key(word.symbols[i], word.symbols[i + 1]);
        pair_counts_[k] += word.freq;
        where_[k].insert(w);
      }
    }
    for (const auto& [k, count] : pair_counts_) heap_.push({count, k});
  }

  // Merges the most frequent pair everywhere it occurs, updating the pair
  // counts from the words it touched only. False when nothing is left.
  bool MergeBest() {
    while (!heap_.empty()) {
      const Candidate top = heap_.top();
      heap_.pop();
      const auto it = pair_counts_.find(top.pair);
      const int64_t current = it == pair_counts_.end() ? 0 : it->second;
      if (current != top.count) {
        // Stale: the count fell since this entry was pushed.
        if (current > 0) heap_.push({current, top.pair});
        continue;
      }
      if (current < std::max<int64_t>(1, options_.min_frequency)) return false;
      Apply(top.pair);
      return true;
    }
    return false;
  }

  void Apply(uint64_t pair) {
    const int32_t a = Left(pair), b = Right(pair);
    const int32_t c = AddToken(tokens_[a] + tokens_[b]);
    merges_.emplace_back(a, b);
    const absl::flat_hash_set<int32_t> touched = std::move(where_[pair]);
    where_.erase(pair);
    pair_counts_.erase(pair);

    absl::flat_hash_map<uint64_t, int64_t> delta;
    const auto add = [&](int32_t x, int32_t y, int64_t d, int32_t w) {
      const uint64_t k = Key(x, y);
      delta[k] += d;
      if (d > 0) where_[k].insert(w);
    };
    for (const int32_t w : touched) {
      std::vector<int32_t>& s = words_[w].symbols;
      const int64_t f = words_[w].freq;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] != a || s[i + 1] != b) continue;
        if (i > 0) {
          add(s[i - 1], a, -f, w);
          add(s[i - 1], c, f, w);
        }
        if (i + 2 < s.size()) {
          add(b, s[i + 2], -f, w);
          add(c, s[i + 2], f, w);
        }
        s[i] = c;
        s.erase(s.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      }
    }
    for (const auto& [k, d] : delta) {
      if (d == 0 || k == pair) continue;
      int64_t& count = pair_counts_[k];
      count += d;
      if (count <= 0) {
        pair_counts_.erase(k);
      } else if (d > 0) {
        heap_.push({count, k});  // grown: falls are caught when popped
      }
    }
  }

  absl::StatusOr<std::unique_ptr<Tokenizer>> Build() const {
    json added = json::array();
    for (size_t i = 0; i < options_.special_tokens.size(); ++i) {
      added.push_back({{"id", i}, {"content", options_.special_tokens[i]}, {"single_word", false},
                       {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
    json vocab = json::object();
    for (size_t id = 0; id < tokens_.size(); ++id) vocab[tokens_[id]] = id;
    json merges = json::array();
    for (const auto& [a, b] : merges_) merges.push_back(absl::StrCat(tokens_[a], " ", tokens_[b]));
    const json root = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", std::move(added)},
        {"normalizer", nullptr},
        {"pre_tokenizer", ByteLevelComponent()},
        {"post_processor", ByteLevelComponent()},
        {"decoder", ByteLevelComponent()},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr},
          {"fuse_unk", false},
          {"byte_fallback", false},
          {"vocab", std::move(vocab)},
          {"merges", std::move(merges)}}},
    };
    return Tokenizer::FromJson(root);
  }

  const BpeTrainerOptions& options_;
  std::vector<std::string> tokens_;  // byte-level text by id
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<Word> words_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  absl::flat_hash_map<uint64_t, int64_t> pair_counts_;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<int32_t>> where_;  // words holding a pair
  std::priority_queue<Candidate> heap_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> TrainByteLevelBpe(absl::Span<const std::string> texts,
                                                             const BpeTrainerOptions& options) {
  absl::flat_hash_set<std::string> seen;
  for (const std::string& s : options.special_tokens) {
    if (s.empty() || !IsValidUtf8(s)) {
      return absl::InvalidArgumentError("special tokens must be non-empty UTF-8");
    }
    if (!seen.insert(s).second) {
      return absl::InvalidArgumentError(absl::StrCat("special token \"", s, "\" is given twice"));
    }
  }
  const int64_t minimum = static_cast<int64_t>(options.special_tokens.size()) + 256;
  if (options.vocab_size < minimum) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size ", options.vocab_size,
                                                   " is below the ", minimum,
                                                   " tokens that special tokens and bytes need"));
  }
  return Trainer(options).Run(texts);
}

}  // namespace loupe::lm
