#include "workers/lm/tokenizer/bpe_model.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

constexpr absl::string_view kMeta = "\xE2\x96\x81";  // U+2581 "▁"

// Whether the character before byte pos of s is "▁". UTF-8 lead bytes are
// distinct from continuation bytes, so matching the three bytes is enough.
bool AfterMeta(absl::string_view s, size_t pos) {
  return pos >= kMeta.size() && s.substr(pos - kMeta.size(), kMeta.size()) == kMeta;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    std::vector<std::pair<std::string, int32_t>> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options) {
  auto m = std::unique_ptr<BpeModel>(new BpeModel());
  m->options_ = std::move(options);
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: model (BPE): token \"", token, "\" has negative id ", id));
    }
    max_id = std::max(max_id, id);
  }
  m->id_to_token_.resize(max_id + 1);
  m->has_id_.assign(max_id + 1, false);
  m->vocab_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    if (m->has_id_[id]) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model (BPE): id ", id,
                                                     " is given to both \"", m->id_to_token_[id],
                                                     "\" and \"", token, "\""));
    }
    m->has_id_[id] = true;
    m->id_to_token_[id] = token;
    m->vocab_.emplace(std::move(token), id);
  }

  m->merges_.reserve(merges.size());
  m->merge_map_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const auto missing = [&](const std::string& token) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model (BPE): merge #", rank,
                                                     " \"", a, " ", b, "\": token \"", token,
                                                     "\" is not in the vocab"));
    };
    const auto ia = m->vocab_.find(a), ib = m->vocab_.find(b);
    if (ia == m->vocab_.end()) return missing(a);
    if (ib == m->vocab_.end()) return missing(b);
    const std::string joined = a + b;
    const auto ij = m->vocab_.find(joined);
    if (ij == m->vocab_.end()) return missing(joined);
    m->merges_.emplace_back(ia->second, ib->second);
    // A repeated pair takes its last rank, as a Hugging Face merge map does.
    m->merge_map_[PairKey(ia->second, ib->second)] = {static_cast<int32_t>(rank), ij->second};
  }

  for (int b = 0; b < 256; ++b) {
    const auto it = m->vocab_.find(absl::StrFormat("<0x%02X>", b));
    m->byte_ids_[b] = it == m->vocab_.end() ? -1 : it->second;
  }
  m->split_before_meta_ = m->vocab_.contains(kMeta);
  for (const std::string& t : m->id_to_token_) {
    // "▁" is allowed only in a leading run: at 0, 3, 6, ... after "▁"s.
    const absl::string_view token = t;
    for (size_t pos = token.find(kMeta, 1); pos != absl::string_view::npos; pos = token.find(kMeta, pos + 1)) {
      if (!AfterMeta(token, pos)) m->split_before_meta_ = false;
    }
  }
  if (m->options_.unk_token.has_value()) {
    const auto it = m->vocab_.find(*m->options_.unk_token);
    if (it == m->vocab_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model (BPE): unk_token \"",
                                                     *m->options_.unk_token,
                                                     "\" is not in the vocab"));
    }
    m->unk_id_ = it->second;
  }
  return m;
}

std::optional<int32_t> BpeModel::TokenToId(absl::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || id >= size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::InitialSymbols(absl::string_view word, std::vector<int32_t>* symbols) const {
  bool last_was_unk = false;
  ForEachUtf8Char(word, [&](absl::string_view ch) {
    const auto it = vocab_.find(ch);
    if (it != vocab_.end()) {
      symbols->push_back(it->second);
      last_was_unk = false;
      return;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (const char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (const char c : ch) symbols->push_back(byte_ids_[static_cast<uint8_t>(c)]);
        last_was_unk = false;
        return;
      }
    }
    // Without an unk token Hugging Face drops the character; so do we.
    if (!unk_id_.has_value()) return;
    if (!(options_.fuse_unk && last_was_unk)) symbols->push_back(*unk_id_);
    last_was_unk = true;
  });
}

void BpeModel::MergeSymbols(std::vector<int32_t>* symbols) const {
  const int n = static_cast<int>(symbols->size());
  if (n < 2) return;
  std::vector<int32_t>& id = *symbols;
  // A doubly linked list over positions; a merged-away symbol gets id -1.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  // Candidates ordered by (rank, position): a min-heap. Entries go stale when
  // a neighbour merges; they are checked when popped instead of removed.
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merge_map_.find(PairKey(id[pos], id[next[pos]]));
    if (it != merge_map_.end()) heap.push({it->second.rank, pos, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const int right = next[top.pos];
    if (id[top.pos] < 0 || right < 0) continue;
    const auto it = merge_map_.find(PairKey(id[top.pos], id[right]));
    if (it == merge_map_.end() || it->second.rank != top.rank) continue;  // stale
    id[top.pos] = top.new_id;
    id[right] = -1;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    push(prev[top.pos]);
    push(top.pos);
  }
  size_t out = 0;
  for (int i = 0; i < n; ++i) {
    if (id[i] >= 0) id[out++] = id[i];
  }
  id.resize(out);
}

void BpeModel::Tokenize(absl::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    const auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  if (!split_before_meta_) {
    TokenizeCached(word, ids);
    return;
  }
  size_t begin = 0;
  for (size_t pos = word.find(kMeta, 1); pos != absl::string_view::npos; pos = word.find(kMeta, pos + 1)) {
    if (AfterMeta(word, pos)) continue;  // inside a run of "▁"
    TokenizeCached(word.substr(begin, pos - begin), ids);
    begin = pos;
  }
  TokenizeCached(word.substr(begin), ids);
}

void BpeModel::TokenizeCached(absl::string_view word, std::vector<int32_t>* ids) const {
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  InitialSymbols(word, &symbols);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
  if (cacheable) {
    absl::MutexLock lock(&cache_mu_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(symbols));
  }
}

}  // namespace loupe::lm
