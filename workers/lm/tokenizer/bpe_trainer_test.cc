// Byte-level BPE training: exact merges on small cases, agreement with a
// from-scratch recount, determinism, the saved file, and round trips.
#include "workers/lm/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/byte_level.h"
#include "workers/lm/tokenizer/pre_tokenizer.h"
#include "workers/lm/tokenizer/test_fixtures.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;

std::vector<std::string> SavedMerges(const Tokenizer& t) {
  const json j = json::parse(t.ToJsonString());
  return j["model"]["merges"].get<std::vector<std::string>>();
}

std::unique_ptr<Tokenizer> MustTrain(const std::vector<std::string>& texts, BpeTrainerOptions options) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = TrainByteLevelBpe(texts, options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(BpeTrainerTest, MergesMostFrequentPairsFirst) {
  // Words: "ab" x1, "Ġab" x3, "abc" x1. (a,b) occurs 5 times, then (Ġ,ab)
  // 3 times; (ab,c) once, which min_frequency 2 leaves out.
  BpeTrainerOptions options;
  options.vocab_size = 300;
  auto t = MustTrain({"ab ab ab ab", "abc"}, options);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(SavedMerges(*t), ElementsAre("a b", "Ġ ab"));
  EXPECT_EQ(t->vocab_size(), 258);
  EXPECT_THAT(t->Encode("ab ab"), ElementsAre(*t->TokenToId("ab"), *t->TokenToId("Ġab")));
}

TEST(BpeTrainerTest, TiesGoToTheSmallerIds) {
  BpeTrainerOptions options;
  options.vocab_size = 258;
  options.min_frequency = 1;
  // (z,w) and (x,y) both occur twice; x sorts before z in the byte alphabet.
  auto t = MustTrain({"zw", "xy", "zw", "xy"}, options);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(SavedMerges(*t), ElementsAre("x y", "z w"));
}

TEST(BpeTrainerTest, SpecialTokensComeFirstAndStayWhole) {
  BpeTrainerOptions options;
  options.vocab_size = 400;
  options.special_tokens = {"<|endoftext|>", "<pad>"};
  auto t = MustTrain({"one text<|endoftext|>another text", "text text text"}, options);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->TokenToId("<|endoftext|>"), 0);
  EXPECT_EQ(t->TokenToId("<pad>"), 1);
  EXPECT_TRUE(t->IsSpecial(0));
  EXPECT_EQ(t->TokenToId("!"), 2);  // then the bytes, in GPT-2's order
  EXPECT_EQ(t->eos_id(), 0);
  const std::vector<int32_t> ids = t->Encode("a<|endoftext|>b");
  EXPECT_THAT(ids, ElementsAre(*t->TokenToId("a"), 0, *t->TokenToId("b")));
  EXPECT_EQ(t->Decode(ids), "ab");
}

TEST(BpeTrainerTest, RejectsBadOptions) {
  BpeTrainerOptions small;
  small.vocab_size = 200;
  EXPECT_EQ(TrainByteLevelBpe({"x"}, small).status().code(), absl::StatusCode::kInvalidArgument);
  BpeTrainerOptions dup;
  dup.special_tokens = {"<s>", "<s>"};
  EXPECT_EQ(TrainByteLevelBpe({"x"}, dup).status().code(), absl::StatusCode::kInvalidArgument);
}

// The same merges by brute force: recount every pair of every word before
// each merge. Guards the trainer's incremental count updates.
std::vector<std::string> NaiveMerges(const std::vector<std::string>& texts, int merges_wanted) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre =
      PreTokenizer::FromJson({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}});
  std::map<std::string, int64_t> counts;
  for (const std::string& text : texts) {
    std::vector<std::string> words;
    (*pre)->Split(text, true, &words);
    for (const std::string& w : words) ++counts[w];
  }
  // Ids as the trainer gives them: bytes in code point order.
  std::map<std::string, int32_t> id;
  std::vector<std::pair<char32_t, int>> alphabet;
  for (int b = 0; b < 256; ++b) alphabet.emplace_back(ByteLevelCodePoint(b), b);
  std::sort(alphabet.begin(), alphabet.end());
  for (const auto& [cp, b] : alphabet) id.emplace(ByteLevelChar(b), static_cast<int32_t>(id.size()));
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, n] : counts) {
    std::vector<std::string> symbols;
    ForEachUtf8Char(w, [&](absl::string_view c) { symbols.emplace_back(c); });
    words.emplace_back(std::move(symbols), n);
  }
  std::vector<std::string> merges;
  for (int m = 0; m < merges_wanted; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [symbols, n] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += n;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [p, n] : pairs) {
      const auto key = [&](const std::pair<std::string, std::string>& q) {
        return std::make_pair(id.at(q.first), id.at(q.second));
      };
      if (n > best_count || (n == best_count && best != nullptr && key(p) < key(*best))) {
        best = &p;
        best_count = n;
      }
    }
    if (best == nullptr || best_count < 2) break;
    const std::string a = best->first, b = best->second;
    merges.push_back(a + " " + b);
    id.emplace(a + b, static_cast<int32_t>(id.size()));
    for (auto& [symbols, n] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
          out.push_back(a + b);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      symbols = std::move(out);
    }
  }
  return merges;
}

TEST(BpeTrainerTest, IncrementalCountsMatchARecount) {
  absl::StatusOr<std::vector<std::string>> corpus = testing::ReadCorpus();
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  const std::vector<std::string> texts(corpus->begin(), corpus->begin() + 300);
  BpeTrainerOptions options;
  options.vocab_size = 256 + 150;
  auto t = MustTrain(texts, options);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(SavedMerges(*t), NaiveMerges(texts, 150));
}

TEST(BpeTrainerTest, CorpusTokenizerIsDeterministicSavedAndRoundTrips) {
  absl::StatusOr<std::vector<std::string>> corpus = testing::ReadCorpus();
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  BpeTrainerOptions options;
  options.vocab_size = 2000;
  options.special_tokens = {"<|endoftext|>"};
  auto t = MustTrain(*corpus, options);
  auto again = MustTrain(*corpus, options);
  ASSERT_NE(t, nullptr);
  ASSERT_NE(again, nullptr);
  const std::string saved = t->ToJsonString();
  EXPECT_EQ(again->ToJsonString(), saved);
  EXPECT_EQ(t->vocab_size(), 2000);

  // Hugging Face's tokenizer.json schema, field by field.
  const json j = json::parse(saved);
  EXPECT_EQ(j["version"], "1.0");
  EXPECT_TRUE(j["truncation"].is_null());
  EXPECT_TRUE(j["padding"].is_null());
  EXPECT_TRUE(j["normalizer"].is_null());
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  EXPECT_EQ(j["pre_tokenizer"], byte_level);
  EXPECT_EQ(j["post_processor"]["type"], "ByteLevel");
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(j["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(j["added_tokens"][0]["special"], true);
  const json& model = j["model"];
  EXPECT_EQ(model["type"], "BPE");
  for (const char* key : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"}) {
    EXPECT_TRUE(model[key].is_null()) << key;
  }
  EXPECT_EQ(model["fuse_unk"], false);
  EXPECT_EQ(model["byte_fallback"], false);
  EXPECT_EQ(model["vocab"].size(), 2000u);
  EXPECT_EQ(model["merges"].size(), 2000u - 257u);

  absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = Tokenizer::FromJsonString(saved);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  size_t bytes = 0, tokens = 0, failures = 0;
  for (const std::string& text : *corpus) {
    const std::vector<int32_t> ids = t->Encode(text);
    bytes += text.size();
    tokens += ids.size();
    if ((*loaded)->Encode(text) != ids || t->Decode(ids) != text) ++failures;
  }
  EXPECT_EQ(failures, 0u);
  // Trained on this very text, 2000 tokens compress it well below 2 bytes a token.
  EXPECT_LT(tokens * 2, bytes);
}

}  // namespace
}  // namespace loupe::lm
