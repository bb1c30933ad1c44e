// The GPT-2 and Llama fixtures end to end: known ids, special tokens,
// SentencePiece spacing rules, saving, the Split pre-tokenizer and threads.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
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
using testing::Concat;
using testing::FixtureJson;
using testing::MustLoad;
using testing::MustLoadFixture;

TEST(Gpt2Test, KnownIdsAndSpecialToken) {
  auto t = MustLoadFixture("gpt2_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(t->Encode("Hello world"), ElementsAre(15496, 995));
  EXPECT_EQ(t->vocab_size(), 50257);
  EXPECT_EQ(t->eos_id(), 50256);
  EXPECT_EQ(t->bos_id(), 50256);  // GPT-2 uses <|endoftext|> for both
  EXPECT_EQ(t->TokenToId("Ġworld"), 995);
  EXPECT_EQ(t->IdToToken(995), "Ġworld");
  const std::vector<int32_t> ids = t->Encode("a<|endoftext|>b");
  EXPECT_THAT(ids, ElementsAre(64, 50256, 65));
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/true), "ab");
  EXPECT_EQ(t->Decode(ids, /*skip_special_tokens=*/false), "a<|endoftext|>b");
}

TEST(Gpt2Test, RoundTripsBytesAndRepairsBadUtf8) {
  auto t = MustLoadFixture("gpt2_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  for (const std::string text : {"", " ", "\n\n\t  x  ", "naïve café — 東京 😀👨‍👩‍👧", "  leading and trailing  ",
                                 "\x01\x02 control \x7f", "tabs\tand\r\nCRLF"}) {
    EXPECT_EQ(t->Decode(t->Encode(text)), text) << text;
  }
  // Ill-formed input is repaired to U+FFFD before encoding.
  EXPECT_EQ(t->Decode(t->Encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
  // Half a character decodes as U+FFFD, like Hugging Face's lossy decode.
  const std::vector<int32_t> euro = t->Encode("𝔘");
  ASSERT_GE(euro.size(), 2u);  // a rare character: split across tokens
  EXPECT_EQ(t->Decode({euro[0]}), "\xEF\xBF\xBD");
  EXPECT_EQ(t->Decode({999999, -1}), "");  // ids that are no token are skipped
}

TEST(LlamaTest, BosAndSpecialTokensInText) {
  auto t = MustLoadFixture("llama_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->vocab_size(), 32000);
  EXPECT_THAT(t->Encode("Hello world!"), ElementsAre(1, 15043, 3186, 29991));
  EXPECT_THAT(t->Encode("Hello world!", /*add_special_tokens=*/false), ElementsAre(15043, 3186, 29991));
  // Added tokens are cut out first and each stretch between them is
  // normalized on its own, so "Hi" gets its own "▁" (the legacy Llama rule).
  const std::vector<int32_t> hi = t->Encode("Hi", false);
  EXPECT_EQ(t->Encode("<s>Hi</s>", false), Concat({{1}, hi, {2}}));
  EXPECT_EQ(t->Decode(t->Encode("<s>Hi</s>"), /*skip_special_tokens=*/true), "Hi");
  EXPECT_EQ(t->Decode(t->Encode("Hi"), /*skip_special_tokens=*/false), "<s> Hi");
}

TEST(LlamaTest, ByteFallbackAndSpacesRoundTrip) {
  auto t = MustLoadFixture("llama_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  // U+1F600 has no token: its four UTF-8 bytes come out as <0xXX> tokens.
  const std::vector<int32_t> ids = t->Encode("😀", false);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(t->IdToToken(ids[ids.size() - 4]), "<0xF0>");
  EXPECT_EQ(t->IdToToken(ids.back()), "<0x80>");
  for (const std::string text : {"😀", "  two leading spaces", "trailing  ", "a\n\nb\tc", " ", "x"}) {
    EXPECT_EQ(t->Decode(t->Encode(text)), text) << text;
  }
  // Bytes that do not form a character decode as one U+FFFD each.
  EXPECT_EQ(t->Decode({ids[ids.size() - 4], ids[ids.size() - 3]}), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

// The newer spelling of the same tokenizer: no normalizer, a Metaspace
// pre-tokenizer that prepends "▁" only at the start of the input, and a
// Metaspace decoder.
json MetaspaceLlama(const std::string& scheme) {
  json j = FixtureJson("llama_tokenizer.json.gz");
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", false}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", scheme}, {"split", false}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}}}}};
  return j;
}

TEST(LlamaTest, MetaspacePrependSchemeFirst) {
  auto legacy = MustLoadFixture("llama_tokenizer.json.gz");
  auto first = MustLoad(MetaspaceLlama("first"));
  auto never = MustLoad(MetaspaceLlama("never"));
  ASSERT_NE(legacy, nullptr);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(never, nullptr);
  for (const std::string text : {"Hello world!", "a\n\nb  c", "東京 😀"}) {
    EXPECT_EQ(first->Encode(text), legacy->Encode(text)) << text;
    EXPECT_EQ(first->Decode(first->Encode(text)), text) << text;
  }
  // After an added token the text no longer starts the input: no "▁".
  EXPECT_EQ(first->Encode("<s>Hi", false), Concat({{1}, never->Encode("Hi", false)}));
  EXPECT_NE(first->Encode("<s>Hi", false), legacy->Encode("<s>Hi", false));
  // The documented leading-space rule: text that starts with a space already
  // starts with "▁", nothing is prepended, and decoding drops that first
  // "▁", so one leading space is lost. (The legacy Prepend normalizer always
  // prepends and round-trips exactly.)
  EXPECT_EQ(first->Decode(first->Encode(" Hello")), "Hello");
  EXPECT_EQ(legacy->Decode(legacy->Encode(" Hello")), " Hello");
}

TEST(SaveTest, JsonRoundTripsExactly) {
  for (const char* name : {"gpt2_tokenizer.json.gz", "llama_tokenizer.json.gz"}) {
    auto t = MustLoadFixture(name);
    ASSERT_NE(t, nullptr);
    const std::string text = t->ToJsonString();
    absl::StatusOr<std::unique_ptr<Tokenizer>> again = Tokenizer::FromJsonString(text);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ((*again)->ToJsonString(), text) << name;
    const std::string sample = "Saving keeps every id: naïve 東京 😀\n\t<|endoftext|><s>";
    EXPECT_EQ((*again)->Encode(sample), t->Encode(sample)) << name;
    // The saved file holds the same components as the fixture.
    const json saved = json::parse(text), original = FixtureJson(name);
    for (const char* key : {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
      EXPECT_EQ(saved[key], original[key]) << name << " " << key;
    }
    EXPECT_EQ(saved["model"]["vocab"], original["model"]["vocab"]) << name;
    EXPECT_EQ(saved["model"]["merges"], original["model"]["merges"]) << name;
  }
}

TEST(SaveTest, SaveJsonWritesAFileThatLoads) {
  auto t = MustLoadFixture("llama_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("loupe_tok_" + std::to_string(::getpid()) + ".json")).string();
  ASSERT_TRUE(t->SaveJson(path).ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> again = Tokenizer::FromJsonFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->Encode("round trip"), t->Encode("round trip"));
}

TEST(SplitTest, RegexSplitThenByteLevelWithoutRegex) {
  json j = FixtureJson("gpt2_tokenizer.json.gz");
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", R"(\p{N}{1,3}| ?\p{L}+|\s+|[^\s\p{L}\p{N}]+)"}}},
                           {"behavior", "Isolated"}, {"invert", false}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  auto t = MustLoad(j);
  auto gpt2 = MustLoadFixture("gpt2_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  ASSERT_NE(gpt2, nullptr);
  // Digits now come in groups of at most three.
  EXPECT_EQ(t->Encode("12345"), Concat({gpt2->Encode("123"), gpt2->Encode("45")}));
  EXPECT_EQ(t->Encode("Hello world"), gpt2->Encode("Hello world"));
  EXPECT_EQ(t->Decode(t->Encode("x = 12345;\n")), "x = 12345;\n");
}

TEST(ThreadTest, ConcurrentEncodesAgree) {
  auto t = MustLoadFixture("gpt2_tokenizer.json.gz");
  ASSERT_NE(t, nullptr);
  absl::StatusOr<std::vector<std::string>> corpus = testing::ReadCorpus();
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  std::vector<std::vector<int32_t>> expected;
  // Expected ids from a fresh tokenizer, so the shared one starts cold.
  auto reference = MustLoadFixture("gpt2_tokenizer.json.gz");
  for (const std::string& s : *corpus) expected.push_back(reference->Encode(s));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      // Each thread walks the corpus from a different place.
      for (size_t n = 0; n < corpus->size(); ++n) {
        const size_t i = (n + k * corpus->size() / 4) % corpus->size();
        if (t->Encode((*corpus)[i]) != expected[i]) ++mismatches[k];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

}  // namespace
}  // namespace loupe::lm
