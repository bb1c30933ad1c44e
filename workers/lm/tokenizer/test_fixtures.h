// Readers for the committed fixtures in testdata/ (see testdata/make_golden.sh).
// Test-only; stateless functions, thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_TEST_FIXTURES_H_
#define LOUPE_WORKERS_LM_TOKENIZER_TEST_FIXTURES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm::testing {

std::string TestdataPath(const std::string& name);

// Whole file, gunzipped when the name ends in .gz.
absl::StatusOr<std::string> ReadFixture(const std::string& name);

// testdata/corpus.jsonl.gz: one JSON string per line.
absl::StatusOr<std::vector<std::string>> ReadCorpus();

// A golden file: one line of space-separated ids per corpus entry.
absl::StatusOr<std::vector<std::vector<int32_t>>> ReadGolden(const std::string& name);

// Tokenizer from a gzipped tokenizer.json fixture.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadFixtureTokenizer(const std::string& name);

// The fixture's tokenizer.json, parsed, for tests that edit it.
nlohmann::json FixtureJson(const std::string& name);

// Tokenizers that must load (a failure is reported and nullptr returned).
std::unique_ptr<Tokenizer> MustLoad(const nlohmann::json& j);
std::unique_ptr<Tokenizer> MustLoadFixture(const std::string& name);

// The status of loading j (OK if it loads).
absl::Status LoadError(const nlohmann::json& j);

// A tokenizer.json over a tiny vocabulary (ids in the order given, no other
// components); model_extra is merged into "model", extra into the top level.
nlohmann::json TinyBpe(const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                       nlohmann::json model_extra = nlohmann::json::object(),
                       nlohmann::json extra = nlohmann::json::object());

// An added_tokens entry: special, not normalized, no stripping, unless
// flags say otherwise.
nlohmann::json AddedTokenJson(int id, const std::string& content,
                              nlohmann::json flags = nlohmann::json::object());

// Letters a-z are ids 0..25, " " is 26, anything else is <unk> (27).
nlohmann::json LettersTokenizer();

std::vector<int32_t> Concat(std::initializer_list<std::vector<int32_t>> parts);

}  // namespace loupe::lm::testing

#endif  // LOUPE_WORKERS_LM_TOKENIZER_TEST_FIXTURES_H_
