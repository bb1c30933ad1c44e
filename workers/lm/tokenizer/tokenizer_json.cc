// Tokenizer loading from and saving to Hugging Face's tokenizer.json schema.
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/bpe_model.h"
#include "workers/lm/tokenizer/decoder.h"
#include "workers/lm/tokenizer/json_fields.h"
#include "workers/lm/tokenizer/normalizer.h"
#include "workers/lm/tokenizer/post_processor.h"
#include "workers/lm/tokenizer/pre_tokenizer.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {
namespace {

using json = nlohmann::json;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", what));
}

// Fields whose non-default values would change ids in ways Loupe does not
// implement are refused rather than ignored.
absl::Status CheckUnsupportedOptions(const json& root, const json& model) {
  for (const char* key : {"truncation", "padding"}) {
    const auto it = root.find(key);
    if (it != root.end() && !it->is_null()) {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: \"", key, "\" is set; Loupe supports only null ", key));
    }
  }
  const auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return absl::UnimplementedError(
        "tokenizer.json: model (BPE): dropout is not supported (encoding must be deterministic)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: model (BPE): ", key, " is not supported"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeModel>> ParseModel(const json& model) {
  const char* where = "model (BPE)";
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    return Invalid("model (BPE): \"vocab\" must be an object of token -> id");
  }
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return Invalid(absl::StrCat("model (BPE): vocab id of \"", token, "\" must be an integer >= 0"));
    }
    vocab.emplace_back(token, id.get<int32_t>());
  }
  std::vector<std::pair<std::string, std::string>> merges;
  const auto merges_it = model.find("merges");
  if (merges_it != model.end() && !merges_it->is_null()) {
    if (!merges_it->is_array()) return Invalid("model (BPE): \"merges\" must be an array");
    merges.reserve(merges_it->size());
    for (const json& m : *merges_it) {
      // Two spellings: "a b" (older files) and ["a", "b"] (tokenizers >= 0.20).
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          return Invalid(absl::StrCat("model (BPE): merge #", merges.size(), " \"", s,
                                      "\" is not two tokens separated by one space"));
        }
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return Invalid(absl::StrCat("model (BPE): merge #", merges.size(), " must be \"a b\" or [a, b]"));
      }
    }
  }
  BpeOptions options;
  if (absl::Status s = GetOptionalString(model, "unk_token", where, &options.unk_token); !s.ok()) return s;
  if (absl::Status s = GetOptionalBool(model, "fuse_unk", where, &options.fuse_unk); !s.ok()) return s;
  if (absl::Status s = GetOptionalBool(model, "byte_fallback", where, &options.byte_fallback); !s.ok()) return s;
  if (absl::Status s = GetOptionalBool(model, "ignore_merges", where, &options.ignore_merges); !s.ok()) return s;
  return BpeModel::Create(std::move(vocab), merges, std::move(options));
}

// A component that may be null (meaning "none").
template <typename T>
absl::Status ParseOptional(const json& root, const char* key, std::unique_ptr<T>* out) {
  const auto it = root.find(key);
  if (it == root.end() || it->is_null()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<T>> parsed = T::FromJson(*it);
  if (!parsed.ok()) return parsed.status();
  *out = std::move(*parsed);
  return absl::OkStatus();
}

std::optional<int32_t> FirstAddedToken(const AddedVocabulary& added,
                                       std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const AddedToken* t = added.FindByContent(name)) return t->id;
  }
  return std::nullopt;
}

// Compact JSON text; strings are valid UTF-8 once parsed, "replace" only
// guards against a throw.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string Quoted(const std::string& s) { return Dump(json(s)); }

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read tokenizer file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = FromJsonString(buffer.str());
  if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(path, ": ", t.status().message()));
  return t;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJsonString(absl::string_view text) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return Invalid(absl::StrCat("malformed JSON: ", e.what()));
  }
  return FromJson(root);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const json& root) {
  // Fields are type-checked before use; this catch is the backstop that
  // keeps a file of an unforeseen shape an error rather than a crash.
  try {
    return FromJsonChecked(root);
  } catch (const json::exception& e) {
    return Invalid(absl::StrCat("unexpected structure: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJsonChecked(const json& root) {
  if (!root.is_object()) return Invalid("the top level must be an object");
  const auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) return Invalid("missing \"model\" object");
  const json& model = *model_it;
  std::string type = "BPE";  // Hugging Face infers BPE from the fields when "type" is absent
  if (model.contains("type")) {
    if (absl::Status s = GetString(model, "type", "model", &type); !s.ok()) return s;
  }
  if (type != "BPE") return UnsupportedType("model", type, "BPE");
  if (absl::Status s = CheckUnsupportedOptions(root, model); !s.ok()) return s;

  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  absl::StatusOr<AddedVocabulary> added =
      AddedVocabulary::FromJson(root.contains("added_tokens") ? root["added_tokens"] : json());
  if (!added.ok()) return added.status();
  t->added_ = *std::move(added);
  absl::StatusOr<std::unique_ptr<BpeModel>> bpe = ParseModel(model);
  if (!bpe.ok()) return bpe.status();
  t->model_ = std::move(*bpe);
  if (absl::Status s = ParseOptional(root, "normalizer", &t->normalizer_); !s.ok()) return s;
  if (absl::Status s = ParseOptional(root, "pre_tokenizer", &t->pre_tokenizer_); !s.ok()) return s;
  if (absl::Status s = ParseOptional(root, "post_processor", &t->post_processor_); !s.ok()) return s;
  if (absl::Status s = ParseOptional(root, "decoder", &t->decoder_); !s.ok()) return s;

  if (t->post_processor_) {
    t->bos_id_ = t->post_processor_->leading_id();
    t->eos_id_ = t->post_processor_->trailing_id();
  }
  if (!t->bos_id_) {
    t->bos_id_ = FirstAddedToken(t->added_, {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|endoftext|>"});
  }
  if (!t->eos_id_) {
    t->eos_id_ = FirstAddedToken(t->added_, {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
  }

  t->config_ = root;
  t->config_["model"].erase("vocab");
  t->config_["model"].erase("merges");
  return t;
}

std::string Tokenizer::ToJsonString() const {
  const auto field = [&](const char* key) {
    const auto it = config_.find(key);
    return it == config_.end() ? std::string("null") : Dump(*it);
  };
  json added = json::array();
  for (const AddedToken& a : added_.tokens()) added.push_back(a.ToJson());

  std::string out = "{\n";
  absl::StrAppend(&out, "  \"version\": ", config_.contains("version") ? field("version") : "\"1.0\"", ",\n");
  absl::StrAppend(&out, "  \"truncation\": null,\n  \"padding\": null,\n");
  absl::StrAppend(&out, "  \"added_tokens\": ", Dump(added), ",\n");
  for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) {
    absl::StrAppend(&out, "  \"", key, "\": ", field(key), ",\n");
  }
  const json& model = config_["model"];
  absl::StrAppend(&out, "  \"model\": {\n    \"type\": \"BPE\",\n");
  for (const auto& [key, value] : model.items()) {
    if (key != "type") absl::StrAppend(&out, "    ", Quoted(key), ": ", Dump(value), ",\n");
  }
  // Vocab in id order, one entry a line, so files diff and read well.
  absl::StrAppend(&out, "    \"vocab\": {");
  bool first = true;
  for (int32_t id = 0; id < model_->size(); ++id) {
    const std::string* token = model_->IdToToken(id);
    if (token == nullptr) continue;
    absl::StrAppend(&out, first ? "\n" : ",\n", "      ", Quoted(*token), ": ", id);
    first = false;
  }
  absl::StrAppend(&out, "\n    },\n    \"merges\": [");
  // "a b" is the spelling every tokenizers version reads; pairs are needed
  // only if a token holds a space.
  bool as_pairs = false;
  for (const auto& [a, b] : model_->merges()) {
    as_pairs = as_pairs || model_->IdToToken(a)->find(' ') != std::string::npos ||
               model_->IdToToken(b)->find(' ') != std::string::npos;
  }
  first = true;
  for (const auto& [a, b] : model_->merges()) {
    const std::string& ta = *model_->IdToToken(a);
    const std::string& tb = *model_->IdToToken(b);
    absl::StrAppend(&out, first ? "\n" : ",\n", "      ",
                    as_pairs ? absl::StrCat("[", Quoted(ta), ", ", Quoted(tb), "]")
                             : Quoted(absl::StrCat(ta, " ", tb)));
    first = false;
  }
  absl::StrAppend(&out, "\n    ]\n  }\n}\n");
  return out;
}

absl::Status Tokenizer::SaveJson(const std::string& path) const {
  // Written beside the target and renamed over it, so a reader never sees
  // half a file.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    out << ToJsonString();
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

}  // namespace loupe::lm
