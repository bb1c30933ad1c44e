// Load errors: malformed JSON, unsupported components (named in the
// message), missing vocab entries and bad fields.
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
using ::testing::HasSubstr;
using testing::LettersTokenizer;
using testing::LoadError;
using testing::TinyBpe;

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::vector<std::string>& parts) {
  EXPECT_EQ(s.code(), code) << s;
  for (const std::string& p : parts) EXPECT_THAT(std::string(s.message()), HasSubstr(p)) << s;
}

TEST(ErrorTest, MalformedJson) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJsonString("{\"model\": {");
  ExpectError(t.status(), absl::StatusCode::kInvalidArgument, {"malformed JSON"});
  ExpectError(LoadError(json::array()), absl::StatusCode::kInvalidArgument, {"top level"});
  ExpectError(LoadError(json{{"version", "1.0"}}), absl::StatusCode::kInvalidArgument, {"model"});
  ExpectError(Tokenizer::FromJsonFile("/nonexistent/tokenizer.json").status(), absl::StatusCode::kNotFound,
              {"/nonexistent/tokenizer.json"});
}

TEST(ErrorTest, UnsupportedComponentsAreNamed) {
  const json base = LettersTokenizer();
  const auto with = [&](const char* key, json value) {
    json j = base;
    j[key] = std::move(value);
    return LoadError(j);
  };
  json unigram = base;
  unigram["model"]["type"] = "Unigram";
  ExpectError(LoadError(unigram), absl::StatusCode::kUnimplemented, {"model", "Unigram", "BPE"});
  ExpectError(with("normalizer", {{"type", "NFKC"}}), absl::StatusCode::kUnimplemented, {"normalizer", "NFKC"});
  ExpectError(with("normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}}),
              absl::StatusCode::kUnimplemented, {"normalizer", "Lowercase"});
  ExpectError(with("pre_tokenizer", {{"type", "Whitespace"}}), absl::StatusCode::kUnimplemented,
              {"pre_tokenizer", "Whitespace"});
  ExpectError(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Contiguous"}}),
              absl::StatusCode::kUnimplemented, {"pre_tokenizer (Split)", "Contiguous"});
  ExpectError(with("decoder", {{"type", "WordPiece"}}), absl::StatusCode::kUnimplemented, {"decoder", "WordPiece"});
  ExpectError(with("post_processor", {{"type", "Mystery"}}), absl::StatusCode::kUnimplemented,
              {"post_processor", "Mystery"});
  ExpectError(with("truncation", {{"max_length", 8}}), absl::StatusCode::kUnimplemented, {"truncation"});
  json dropout = base;
  dropout["model"]["dropout"] = 0.1;
  ExpectError(LoadError(dropout), absl::StatusCode::kUnimplemented, {"dropout"});
  json suffix = base;
  suffix["model"]["end_of_word_suffix"] = "</w>";
  ExpectError(LoadError(suffix), absl::StatusCode::kUnimplemented, {"end_of_word_suffix"});
}

TEST(ErrorTest, MissingVocabEntries) {
  ExpectError(LoadError(TinyBpe({"a", "b"}, {"a b"})), absl::StatusCode::kInvalidArgument,
              {"merge #0", "\"ab\" is not in the vocab"});
  ExpectError(LoadError(TinyBpe({"a", "ab"}, {"a b"})), absl::StatusCode::kInvalidArgument,
              {"\"b\" is not in the vocab"});
  ExpectError(LoadError(TinyBpe({"a"}, {}, {{"unk_token", "<unk>"}})), absl::StatusCode::kInvalidArgument,
              {"unk_token", "<unk>"});
  ExpectError(LoadError(TinyBpe({"a", "b", "ab"}, {"ab"})), absl::StatusCode::kInvalidArgument,
              {"merge #0", "two tokens"});
  json bad_id = TinyBpe({"a"}, {});
  bad_id["model"]["vocab"]["b"] = "one";
  ExpectError(LoadError(bad_id), absl::StatusCode::kInvalidArgument, {"\"b\""});
  json dup = TinyBpe({"a"}, {});
  dup["model"]["vocab"]["b"] = 0;
  ExpectError(LoadError(dup), absl::StatusCode::kInvalidArgument, {"id 0"});
}

TEST(ErrorTest, BadComponentFields) {
  json j = LettersTokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                         {"special_tokens", json::object()}};
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"post_processor (TemplateProcessing)", "<s>"});
  j = LettersTokenizer();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", "yes"}};
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"pre_tokenizer (ByteLevel)", "add_prefix_space"});
  j = LettersTokenizer();
  j["added_tokens"] = {{{"id", 5}}};
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"added_tokens[0]", "content"});
  j = LettersTokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(("}}}, {"behavior", "Isolated"}};
  ExpectError(LoadError(j), absl::StatusCode::kInvalidArgument, {"pre_tokenizer (Split)", "(("});
}

}  // namespace
}  // namespace loupe::lm
