#include "workers/lm/tokenizer/post_processor.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/json_fields.h"

namespace loupe::lm {
namespace {

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", where, ": ", what));
}

// Bert/Roberta store "cls"/"sep" as ["<s>", 0].
absl::Status TokenPairId(const nlohmann::json& j, const char* key, absl::string_view where,
                         int32_t* id) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_string() ||
      !(*it)[1].is_number_integer()) {
    return Invalid(where, absl::StrCat("\"", key, "\" must be [token, id]"));
  }
  *id = (*it)[1].get<int32_t>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostProcessor>> PostProcessor::FromJson(const nlohmann::json& j) {
  auto p = std::unique_ptr<PostProcessor>(new PostProcessor());
  if (absl::Status s = AddTemplate(j, &p->before_, &p->after_); !s.ok()) return s;
  return p;
}

absl::Status PostProcessor::AddTemplate(const nlohmann::json& j, std::vector<int32_t>* before,
                                        std::vector<int32_t>* after) {
  std::string type;
  if (absl::Status s = GetType(j, "post_processor", &type); !s.ok()) return s;
  const std::string where = absl::StrCat("post_processor (", type, ")");
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    const auto list = j.find("processors");
    if (list == j.end() || !list->is_array()) return Invalid(where, "\"processors\" must be an array");
    for (const nlohmann::json& child : *list) {
      // Each processor wraps the output of the previous one.
      std::vector<int32_t> b, a;
      if (absl::Status s = AddTemplate(child, &b, &a); !s.ok()) return s;
      before->insert(before->begin(), b.begin(), b.end());
      after->insert(after->end(), a.begin(), a.end());
    }
    return absl::OkStatus();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    int32_t cls = 0, sep = 0;
    if (absl::Status s = TokenPairId(j, "cls", where, &cls); !s.ok()) return s;
    if (absl::Status s = TokenPairId(j, "sep", where, &sep); !s.ok()) return s;
    before->push_back(cls);
    after->push_back(sep);
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return UnsupportedType("post_processor", type,
                           "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence");
  }
  const auto single = j.find("single");
  const auto specials = j.find("special_tokens");
  if (single == j.end() || !single->is_array()) return Invalid(where, "\"single\" must be an array");
  if (specials == j.end() || !specials->is_object()) {
    return Invalid(where, "\"special_tokens\" must be an object");
  }
  bool seen_sequence = false;
  for (const nlohmann::json& piece : *single) {
    if (!piece.is_object() || piece.size() != 1) {
      return Invalid(where, "each \"single\" piece must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
    const std::string kind = piece.begin().key();
    const nlohmann::json& body = piece.begin().value();
    std::string id;
    if (absl::Status s = GetString(body, "id", where, &id); !s.ok()) return s;
    if (kind == "Sequence") {
      if (id != "A") return Invalid(where, absl::StrCat("the single template uses sequence \"", id, "\""));
      if (seen_sequence) return Invalid(where, "the single template repeats its sequence");
      seen_sequence = true;
    } else if (kind == "SpecialToken") {
      const auto entry = specials->find(id);
      if (entry == specials->end()) {
        return Invalid(where, absl::StrCat("special token \"", id, "\" is not in special_tokens"));
      }
      const auto ids = entry->find("ids");
      if (ids == entry->end() || !ids->is_array()) {
        return Invalid(where, absl::StrCat("special_tokens[\"", id, "\"].ids must be an array"));
      }
      for (const nlohmann::json& x : *ids) {
        if (!x.is_number_integer()) {
          return Invalid(where, absl::StrCat("special_tokens[\"", id, "\"].ids must hold integers"));
        }
        (seen_sequence ? after : before)->push_back(x.get<int32_t>());
      }
    } else {
      return Invalid(where, absl::StrCat("unknown template piece \"", kind, "\""));
    }
  }
  if (!seen_sequence) return Invalid(where, "the single template has no sequence $A");
  return absl::OkStatus();
}

std::vector<int32_t> PostProcessor::Apply(std::vector<int32_t> ids, bool add_special_tokens) const {
  if (!add_special_tokens || (before_.empty() && after_.empty())) return ids;
  std::vector<int32_t> out;
  out.reserve(before_.size() + ids.size() + after_.size());
  out.insert(out.end(), before_.begin(), before_.end());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), after_.begin(), after_.end());
  return out;
}

std::optional<int32_t> PostProcessor::leading_id() const {
  if (before_.size() != 1) return std::nullopt;
  return before_[0];
}

std::optional<int32_t> PostProcessor::trailing_id() const {
  if (after_.size() != 1) return std::nullopt;
  return after_[0];
}

}  // namespace loupe::lm
