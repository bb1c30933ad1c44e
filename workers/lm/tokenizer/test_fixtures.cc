#include "workers/lm/tokenizer/test_fixtures.h"

#include <zlib.h>

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace loupe::lm::testing {

std::string TestdataPath(const std::string& name) {
  return (std::filesystem::path(__FILE__).parent_path() / "testdata" / name).string();
}

absl::StatusOr<std::string> ReadFixture(const std::string& name) {
  const std::string path = TestdataPath(name);
  // gzread reads plain files unchanged too.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  const bool failed = n < 0;
  gzclose(f);
  if (failed) return absl::DataLossError(absl::StrCat("cannot decompress ", path));
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadCorpus() {
  absl::StatusOr<std::string> text = ReadFixture("corpus.jsonl.gz");
  if (!text.ok()) return text.status();
  std::vector<std::string> entries;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    entries.push_back(nlohmann::json::parse(line.begin(), line.end()).get<std::string>());
  }
  return entries;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> ReadGolden(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFixture(name);
  if (!text.ok()) return text.status();
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // final newline
  std::vector<std::vector<int32_t>> rows;
  for (absl::string_view line : lines) {
    std::vector<int32_t> ids;
    for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      int32_t id;
      if (!absl::SimpleAtoi(field, &id)) {
        return absl::DataLossError(absl::StrCat(name, ": bad id \"", field, "\""));
      }
      ids.push_back(id);
    }
    rows.push_back(std::move(ids));
  }
  return rows;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFixtureTokenizer(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFixture(name);
  if (!text.ok()) return text.status();
  return Tokenizer::FromJsonString(*text);
}

using json = nlohmann::json;

json FixtureJson(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFixture(name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? json::parse(*text) : json();
}

std::unique_ptr<Tokenizer> MustLoad(const json& j) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(j);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::unique_ptr<Tokenizer> MustLoadFixture(const std::string& name) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadFixtureTokenizer(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

absl::Status LoadError(const json& j) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(j);
  return t.ok() ? absl::OkStatus() : t.status();
}

json TinyBpe(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
             json model_extra, json extra) {
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
  model.update(model_extra);
  json root = {{"version", "1.0"}, {"added_tokens", json::array()}, {"model", model}};
  root.update(extra);
  return root;
}

json AddedTokenJson(int id, const std::string& content, json flags) {
  json t = {{"id", id},        {"content", content}, {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", false}, {"special", true}};
  t.update(flags);
  return t;
}

json LettersTokenizer() {
  std::vector<std::string> tokens;
  for (char c = 'a'; c <= 'z'; ++c) tokens.emplace_back(1, c);
  tokens.push_back(" ");
  tokens.push_back("<unk>");
  return TinyBpe(tokens, {}, {{"unk_token", "<unk>"}});
}

std::vector<int32_t> Concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace loupe::lm::testing
