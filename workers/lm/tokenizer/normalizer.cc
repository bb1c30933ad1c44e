#include "workers/lm/tokenizer/normalizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/json_fields.h"

namespace loupe::lm {

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::FromJson(const nlohmann::json& j) {
  auto n = std::unique_ptr<Normalizer>(new Normalizer());
  if (absl::Status s = AddSteps(j, &n->steps_); !s.ok()) return s;
  return n;
}

absl::Status Normalizer::AddSteps(const nlohmann::json& j, std::vector<Step>* steps) {
  std::string type;
  if (absl::Status s = GetType(j, "normalizer", &type); !s.ok()) return s;
  const std::string where = absl::StrCat("normalizer (", type, ")");
  if (type == "Sequence") {
    const auto list = j.find("normalizers");
    if (list == j.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": \"normalizers\" must be an array"));
    }
    for (const nlohmann::json& child : *list) {
      if (absl::Status s = AddSteps(child, steps); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  Step step;
  if (type == "Prepend") {
    step.is_prepend = true;
    if (absl::Status s = GetString(j, "prepend", where, &step.prepend); !s.ok()) return s;
  } else if (type == "Replace") {
    absl::StatusOr<Replacement> r = Replacement::FromJson(j, where);
    if (!r.ok()) return r.status();
    step.replacement = *std::move(r);
  } else {
    return UnsupportedType("normalizer", type, "Prepend, Replace, Sequence");
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

std::string Normalizer::Normalize(absl::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    if (step.is_prepend) {
      if (!s.empty()) s = absl::StrCat(step.prepend, s);  // empty text stays empty
    } else {
      s = step.replacement.Apply(s);
    }
  }
  return s;
}

}  // namespace loupe::lm
