// Exact agreement with the npm packages' own encodings on the committed
// corpus (testdata/make_golden.sh): GPT-2 as gpt-tokenizer ships it, Llama as
// llama-tokenizer-js ships it. Every id of every entry must match.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/test_fixtures.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {
namespace {

using testing::LoadFixtureTokenizer;
using testing::ReadCorpus;
using testing::ReadFixture;
using testing::ReadGolden;

struct Agreement {
  size_t lines = 0;
  size_t tokens = 0;
  size_t mismatches = 0;
  size_t round_trip_failures = 0;
};

Agreement Compare(const Tokenizer& tok, const std::vector<std::string>& corpus,
                  const std::vector<std::vector<int32_t>>& golden, bool add_special_tokens,
                  const char* name) {
  Agreement a;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::vector<int32_t> ids = tok.Encode(corpus[i], add_special_tokens);
    ++a.lines;
    a.tokens += golden[i].size();
    if (ids != golden[i]) {
      if (++a.mismatches <= 5) {
        ADD_FAILURE() << name << " entry " << i << " " << nlohmann::json(corpus[i]).dump()
                      << "\n  expected: " << absl::StrJoin(golden[i], " ")
                      << "\n  actual:   " << absl::StrJoin(ids, " ");
      }
    }
    if (tok.Decode(ids, /*skip_special_tokens=*/true) != corpus[i]) {
      if (++a.round_trip_failures <= 5) {
        ADD_FAILURE() << name << " entry " << i << " does not round-trip: "
                      << nlohmann::json(corpus[i]).dump() << " -> "
                      << nlohmann::json(tok.Decode(ids, true)).dump();
      }
    }
  }
  std::cout << "[agreement] " << name << ": " << a.lines << " lines, " << a.tokens
            << " tokens, " << a.mismatches << " mismatches, " << a.round_trip_failures
            << " round-trip failures\n";
  return a;
}

class AgreementTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::vector<std::string>> c = ReadCorpus();
    ASSERT_TRUE(c.ok()) << c.status();
    corpus_ = new std::vector<std::string>(*std::move(c));
  }
  static void TearDownTestSuite() {
    delete corpus_;
    corpus_ = nullptr;
  }
  static std::vector<std::string>* corpus_;
};
std::vector<std::string>* AgreementTest::corpus_ = nullptr;

TEST_F(AgreementTest, CorpusIsLargeAndVaried) {
  ASSERT_GE(corpus_->size(), 1000u);
  size_t multiline = 0, non_ascii = 0, tabs = 0, long_entries = 0;
  for (const std::string& s : *corpus_) {
    multiline += s.find('\n') != std::string::npos;
    tabs += s.find('\t') != std::string::npos;
    long_entries += s.size() > 2000;
    for (const char c : s) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        ++non_ascii;
        break;
      }
    }
  }
  EXPECT_GE(multiline, 50u);
  EXPECT_GE(non_ascii, 200u);
  EXPECT_GE(tabs, 50u);
  EXPECT_GE(long_entries, 5u);
}

// gpt-tokenizer's r50k_base encode() adds no special tokens.
TEST_F(AgreementTest, Gpt2MatchesGptTokenizer) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadFixtureTokenizer("gpt2_tokenizer.json.gz");
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> golden = ReadGolden("gpt2_golden.txt.gz");
  ASSERT_TRUE(golden.ok()) << golden.status();
  ASSERT_EQ(golden->size(), corpus_->size());
  const Agreement a = Compare(**tok, *corpus_, *golden, /*add_special_tokens=*/true, "gpt2");
  EXPECT_EQ(a.mismatches, 0u);
  EXPECT_EQ(a.round_trip_failures, 0u);
  EXPECT_GT(a.tokens, 30000u);
}

// llama-tokenizer-js encode() puts BOS first by default, as the Llama 2
// tokenizer.json's post-processor does with add_special_tokens.
TEST_F(AgreementTest, LlamaMatchesLlamaTokenizerJs) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadFixtureTokenizer("llama_tokenizer.json.gz");
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> golden = ReadGolden("llama_golden.txt.gz");
  ASSERT_TRUE(golden.ok()) << golden.status();
  ASSERT_EQ(golden->size(), corpus_->size());
  const Agreement a = Compare(**tok, *corpus_, *golden, /*add_special_tokens=*/true, "llama");
  EXPECT_EQ(a.mismatches, 0u);
  EXPECT_EQ(a.round_trip_failures, 0u);
  EXPECT_GT(a.tokens, 30000u);
}

// The Llama vocabulary lets BpeModel cut a text before each "▁" and merge the
// stretches alone. A token with "▁" inside ("x▁y", reachable by no merge, so
// ids cannot change) turns that off: the whole text then merges in one pass,
// and must still agree.
TEST_F(AgreementTest, LlamaAgreesWithoutSplittingAtSpaces) {
  absl::StatusOr<std::string> text = ReadFixture("llama_tokenizer.json.gz");
  ASSERT_TRUE(text.ok()) << text.status();
  nlohmann::json j = nlohmann::json::parse(*text);
  j["model"]["vocab"]["x\u2581y"] = 32000;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromJson(j);
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> golden = ReadGolden("llama_golden.txt.gz");
  ASSERT_TRUE(golden.ok()) << golden.status();
  const Agreement a = Compare(**tok, *corpus_, *golden, /*add_special_tokens=*/true, "llama-unsplit");
  EXPECT_EQ(a.mismatches, 0u);
}

// <|endoftext|> in the text encodes as 50256, the pieces around it as
// gpt-tokenizer encodes them on their own.
TEST_F(AgreementTest, Gpt2EndOfTextInText) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadFixtureTokenizer("gpt2_tokenizer.json.gz");
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<std::string> lines = ReadFixture("gpt2_special.jsonl");
  ASSERT_TRUE(lines.ok()) << lines.status();
  size_t n = 0;
  for (absl::string_view line : absl::StrSplit(*lines, '\n', absl::SkipEmpty())) {
    const nlohmann::json j = nlohmann::json::parse(line.begin(), line.end());
    const std::string text = j["text"];
    EXPECT_EQ((*tok)->Encode(text), j["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ((*tok)->Decode((*tok)->Encode(text), /*skip_special_tokens=*/false), text);
    ++n;
  }
  EXPECT_EQ(n, 6u);
}

}  // namespace
}  // namespace loupe::lm
