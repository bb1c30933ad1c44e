// BPE merging, byte fallback and unknowns, and added-token matching, on
// small hand-made tokenizer.json files.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/test_fixtures.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using testing::AddedTokenJson;
using testing::LettersTokenizer;
using testing::MustLoad;
using testing::TinyBpe;

TEST(BpeTest, MergesApplyLowestRankFirst) {
  // (b, c) outranks (a, b), so "abc" goes a|bc -> abc, never ab|c.
  auto t = MustLoad(TinyBpe({"a", "b", "c", "bc", "ab", "abc"}, {"b c", "a b", "a bc"}));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("abc"), ElementsAre(5));
  EXPECT_THAT(t->Encode("abab"), ElementsAre(4, 4));
  EXPECT_THAT(t->Encode("cab"), ElementsAre(2, 4));
}

TEST(BpeTest, EqualRanksMergeLeftmostFirst) {
  auto t = MustLoad(TinyBpe({"a", "aa"}, {"a a"}));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("aaa"), ElementsAre(1, 0));
  EXPECT_THAT(t->Encode("aaaaa"), ElementsAre(1, 1, 0));
}

TEST(BpeTest, MergesAcrossMetaSpaceWhenTheVocabAllowsIt) {
  // "a▁" is a token, so "a" and a following "▁" can merge: the text must not
  // be cut before "▁".
  auto t = MustLoad(TinyBpe({"a", "▁", "b", "a▁", "a▁b", "▁b"}, {"a ▁", "a▁ b", "▁ b"}));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("a▁b▁b"), ElementsAre(4, 5));
  // Without such tokens the cut is exact: "▁b" stays whole after "a".
  auto cut = MustLoad(TinyBpe({"a", "▁", "b", "▁b", "▁▁"}, {"▁ b", "▁ ▁"}));
  ASSERT_NE(cut, nullptr);
  EXPECT_THAT(cut->Encode("a▁b▁▁b"), ElementsAre(0, 3, 1, 3));
}

TEST(BpeTest, MergesAcceptBothSpellings) {
  json j = TinyBpe({"a", "b", "ab"}, {});
  j["model"]["merges"] = json::array({json::array({"a", "b"})});
  auto t = MustLoad(j);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("ab"), ElementsAre(2));
}

TEST(BpeTest, ByteFallbackThenUnknown) {
  // Bytes of "é" (C3 A9) are in the vocab; those of "€" (E2 82 AC) are not.
  auto t = MustLoad(TinyBpe({"<unk>", "a", "<0xC3>", "<0xA9>"}, {},
                            {{"unk_token", "<unk>"}, {"byte_fallback", true}, {"fuse_unk", true}}));
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("aéa"), ElementsAre(1, 2, 3, 1));
  EXPECT_THAT(t->Encode("a€€a€"), ElementsAre(1, 0, 1, 0));  // fused runs of unknowns
}

TEST(BpeTest, UnknownsUnfusedAndDropped) {
  auto unfused = MustLoad(TinyBpe({"<unk>", "a"}, {}, {{"unk_token", "<unk>"}}));
  ASSERT_NE(unfused, nullptr);
  EXPECT_THAT(unfused->Encode("a??"), ElementsAre(1, 0, 0));
  // Without an unk token, Hugging Face drops the character.
  auto none = MustLoad(TinyBpe({"a"}, {}));
  ASSERT_NE(none, nullptr);
  EXPECT_THAT(none->Encode("a?a"), ElementsAre(0, 0));
}

TEST(BpeTest, IgnoreMergesTakesWholeWords) {
  // "abc" is in the vocab but no merge chain reaches it.
  const std::vector<std::string> vocab = {"a", "b", "c", "ab", "abc"};
  auto plain = MustLoad(TinyBpe(vocab, {"a b"}));
  auto whole = MustLoad(TinyBpe(vocab, {"a b"}, {{"ignore_merges", true}}));
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(whole, nullptr);
  EXPECT_THAT(plain->Encode("abc"), ElementsAre(3, 2));
  EXPECT_THAT(whole->Encode("abc"), ElementsAre(4));
}

TEST(AddedTokensTest, LongestMatchWinsAndFlagsApply) {
  json j = LettersTokenizer();
  j["added_tokens"] = {AddedTokenJson(100, "<x>"), AddedTokenJson(101, "<x><y>"),
                       AddedTokenJson(102, "[M]", {{"lstrip", true}, {"rstrip", true}}),
                       AddedTokenJson(103, "[W]", {{"single_word", true}})};
  auto t = MustLoad(j);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("a<x><y>b<x>"), ElementsAre(0, 101, 1, 100));
  EXPECT_THAT(t->Encode("a  [M]  b"), ElementsAre(0, 102, 1));  // spaces swallowed
  EXPECT_THAT(t->Encode("a [W] b"), ElementsAre(0, 26, 103, 26, 1));
  // Glued to a word, a single_word token is plain text.
  EXPECT_THAT(t->Encode("a[W]"), ElementsAre(0, 27, 27, 27));
  EXPECT_THAT(t->Encode("[W]b"), ElementsAre(27, 27, 27, 1));
}

TEST(AddedTokensTest, NormalizedTokensMatchNormalizedText) {
  json j = LettersTokenizer();
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", "q"}}}, {"content", "z"}};
  // "zz" is matched after normalization, so "qq" in the input finds it;
  // "qx" is matched in the raw text, before q becomes z.
  j["added_tokens"] = {AddedTokenJson(100, "zz", {{"normalized", true}}), AddedTokenJson(101, "qx")};
  auto t = MustLoad(j);
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("aqqb"), ElementsAre(0, 100, 1));
  EXPECT_THAT(t->Encode("aqxb"), ElementsAre(0, 101, 1));
  EXPECT_THAT(t->Encode("aqb"), ElementsAre(0, 25, 1));
}

TEST(AddedTokensTest, DecodeSkipsOnlySpecialTokens) {
  json j = LettersTokenizer();
  j["added_tokens"] = {AddedTokenJson(100, "<s>"), AddedTokenJson(101, "hello", {{"special", false}})};
  auto t = MustLoad(j);
  ASSERT_NE(t, nullptr);
  const std::vector<int32_t> ids = t->Encode("<s>hello a");
  EXPECT_THAT(ids, ElementsAre(100, 101, 26, 0));
  // No decoder: Hugging Face joins tokens with spaces.
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/true), "hello   a");
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/false), "<s> hello   a");
  EXPECT_TRUE(t->IsSpecial(100));
  EXPECT_FALSE(t->IsSpecial(101));
  EXPECT_EQ(t->vocab_size(), 102);
  EXPECT_EQ(t->TokenToId("<s>"), 100);
  EXPECT_EQ(t->IdToToken(101), "hello");
  EXPECT_EQ(t->IdToToken(50), "");
  EXPECT_EQ(t->bos_id(), 100);
  EXPECT_EQ(t->eos_id(), std::nullopt);
}

}  // namespace
}  // namespace loupe::lm
