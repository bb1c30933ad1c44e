// UTF-8 repair, the regex rewrite, the byte alphabet and the GPT-2 split.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "workers/lm/tokenizer/byte_level.h"
#include "workers/lm/tokenizer/regex.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kFffd[] = "\xEF\xBF\xBD";

std::vector<std::string> Gpt2Split(const std::string& text) {
  std::vector<std::pair<size_t, size_t>> spans;
  Gpt2SplitRegex().FindAll(text, &spans);
  std::vector<std::string> out;
  for (const auto& [b, e] : spans) out.push_back(text.substr(b, e - b));
  return out;
}

TEST(Utf8Test, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(Utf8Lossy("plain é 😀"), "plain é 😀");
  EXPECT_EQ(Utf8Lossy("\xC3("), std::string(kFffd) + "(");
  // A truncated sequence is one maximal subpart: one U+FFFD.
  EXPECT_EQ(Utf8Lossy("a\xF0\x9F\x98"), std::string("a") + kFffd);
  EXPECT_EQ(Utf8Lossy("\xE2\x82"), kFffd);
  // A surrogate's bytes are three subparts (ED is never followed by A0).
  EXPECT_EQ(Utf8Lossy("\xED\xA0\x80"), std::string(kFffd) + kFffd + kFffd);
  EXPECT_EQ(Utf8Lossy("\xC0\xAF"), std::string(kFffd) + kFffd);  // overlong
  EXPECT_EQ(Utf8Lossy("\xFF"), kFffd);
  EXPECT_TRUE(IsValidUtf8("é😀"));
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(RegexTest, RewritesWhiteSpaceToUnicodeWhiteSpace) {
  absl::StatusOr<std::string> r = RewriteWhiteSpaceClasses(R"(\s+|[^\s\p{L}]|\S|[]\s]|\\s)");
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string ws = kWhiteSpaceClass;
  EXPECT_EQ(*r, "[" + ws + "]+|[^" + ws + R"(\p{L}]|[^)" + ws + "]|[]" + ws + R"(]|\\s)");
  absl::StatusOr<std::string> bad = RewriteWhiteSpaceClasses(R"([\S])");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(RegexTest, CompileErrorsAreInvalidArgument) {
  absl::StatusOr<std::unique_ptr<Regex>> r = Regex::Compile("(unclosed");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("(unclosed"));
}

TEST(RegexTest, WhiteSpaceIsUnicodeWhiteSpace) {
  absl::StatusOr<std::unique_ptr<Regex>> r = Regex::Compile(R"(\s)");
  ASSERT_TRUE(r.ok());
  for (const char* ws : {" ", "\t", "\n", "\v", "\f", "\r", "\u0085", "\u00A0", "\u1680", "\u2000",
                         "\u200A", "\u2028", "\u2029", "\u202F", "\u205F", "\u3000"}) {
    EXPECT_TRUE((*r)->FullMatch(ws)) << ws;
  }
  for (const char* other : {"a", "\u200B", "\uFEFF", "\u180E", "_"}) {
    EXPECT_FALSE((*r)->FullMatch(other)) << other;
  }
}

TEST(ByteLevelTest, AlphabetIsAPrintableBijection) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string& c = ByteLevelChar(static_cast<uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << b;
    std::string back;
    ASSERT_TRUE(ByteLevelToBytes(c, &back));
    EXPECT_EQ(back, std::string(1, static_cast<char>(b)));
  }
  EXPECT_EQ(ByteLevelChar(' '), "Ġ");
  EXPECT_EQ(ByteLevelChar('\n'), "Ċ");
  EXPECT_EQ(ByteLevelChar('A'), "A");
  EXPECT_EQ(BytesToByteLevel("a b\xC3\xA9"), "aĠbÃ©");
  std::string out;
  EXPECT_FALSE(ByteLevelToBytes("€", &out));  // stands for no byte
}

TEST(Gpt2SplitTest, FollowsThePattern) {
  EXPECT_THAT(Gpt2Split("I'm  here\n\n  ok"), ElementsAre("I", "'m", " ", " here", "\n\n ", " ok"));
  EXPECT_THAT(Gpt2Split("Hello, world!!  "), ElementsAre("Hello", ",", " world", "!!", "  "));
  EXPECT_THAT(Gpt2Split("x=42.5e3"), ElementsAre("x", "=", "42", ".", "5", "e", "3"));
  EXPECT_THAT(Gpt2Split("DON'T they'll"), ElementsAre("DON", "'", "T", " they", "'ll"));
  EXPECT_THAT(Gpt2Split("naïve 日本語 😀😀"), ElementsAre("naïve", " 日本語", " 😀😀"));
  EXPECT_THAT(Gpt2Split("\t\tx"), ElementsAre("\t", "\t", "x"));
}

// U+0085 is whitespace for Hugging Face (Oniguruma) and Python's regex, but
// not for JavaScript; U+FEFF the other way round. Loupe follows Hugging Face.
TEST(Gpt2SplitTest, NextLineIsWhiteSpaceAndBomIsNot) {
  EXPECT_THAT(Gpt2Split("a \u0085b"), ElementsAre("a", " ", "\u0085", "b"));
  EXPECT_THAT(Gpt2Split("a \uFEFFb"), ElementsAre("a", " \uFEFF", "b"));
}

}  // namespace
}  // namespace loupe::lm
