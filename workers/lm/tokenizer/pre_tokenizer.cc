#include "workers/lm/tokenizer/pre_tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "workers/lm/tokenizer/byte_level.h"
#include "workers/lm/tokenizer/json_fields.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

// A literal split string as a regex: escape ASCII punctuation, keep the rest.
std::string EscapeForRegex(absl::string_view literal) {
  std::string out;
  for (const char c : literal) {
    if (static_cast<unsigned char>(c) < 0x80 && !absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

absl::Status Prefixed(absl::string_view where, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("tokenizer.json: ", where, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const nlohmann::json& j) {
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  if (absl::Status s = AddSteps(j, &p->steps_); !s.ok()) return s;
  return p;
}

absl::Status PreTokenizer::AddSteps(const nlohmann::json& j, std::vector<Step>* steps) {
  std::string type;
  if (absl::Status s = GetType(j, "pre_tokenizer", &type); !s.ok()) return s;
  const std::string where = absl::StrCat("pre_tokenizer (", type, ")");
  if (type == "Sequence") {
    const auto list = j.find("pretokenizers");
    if (list == j.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": \"pretokenizers\" must be an array"));
    }
    for (const nlohmann::json& child : *list) {
      if (absl::Status s = AddSteps(child, steps); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    if (absl::Status s = GetOptionalBool(j, "add_prefix_space", where, &step.add_prefix_space); !s.ok()) return s;
    if (absl::Status s = GetOptionalBool(j, "use_regex", where, &step.use_regex); !s.ok()) return s;
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    if (absl::Status s = GetString(j, "replacement", where, &step.replacement); !s.ok()) return s;
    if (Utf8SequenceLength(step.replacement, 0) != step.replacement.size() || step.replacement.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": \"replacement\" must be one character"));
    }
    // Files before prepend_scheme existed say add_prefix_space instead.
    bool add_prefix_space = true;
    if (absl::Status s = GetOptionalBool(j, "add_prefix_space", where, &add_prefix_space); !s.ok()) return s;
    step.prepend = add_prefix_space ? Prepend::kAlways : Prepend::kNever;
    std::optional<std::string> scheme;
    if (absl::Status s = GetOptionalString(j, "prepend_scheme", where, &scheme); !s.ok()) return s;
    if (scheme.has_value()) {
      if (*scheme == "always") {
        step.prepend = Prepend::kAlways;
      } else if (*scheme == "first") {
        step.prepend = Prepend::kFirst;
      } else if (*scheme == "never") {
        step.prepend = Prepend::kNever;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.json: ", where, ": unknown prepend_scheme \"", *scheme, "\""));
      }
    }
    if (absl::Status s = GetOptionalBool(j, "split", where, &step.split); !s.ok()) return s;
  } else if (type == "Split") {
    step.kind = Kind::kSplit;
    std::string behavior;
    if (absl::Status s = GetString(j, "behavior", where, &behavior); !s.ok()) return s;
    if (behavior == "Removed") {
      step.remove_matches = true;
    } else if (behavior != "Isolated") {
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: ", where, ": behavior \"",
                                                   behavior, "\" is not supported (supported: Isolated, Removed)"));
    }
    bool invert = false;
    if (absl::Status s = GetOptionalBool(j, "invert", where, &invert); !s.ok()) return s;
    if (invert) {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: ", where, ": invert=true is not supported"));
    }
    const auto pattern = j.find("pattern");
    if (pattern == j.end() || !pattern->is_object() || pattern->size() != 1 ||
        !pattern->begin().value().is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer.json: ", where, ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}"));
    }
    const std::string kind = pattern->begin().key();
    const std::string value = pattern->begin().value().get<std::string>();
    if (kind != "String" && kind != "Regex") {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": unknown pattern kind \"", kind, "\""));
    }
    absl::StatusOr<std::unique_ptr<Regex>> regex =
        Regex::Compile(kind == "String" ? EscapeForRegex(value) : value);
    if (!regex.ok()) return Prefixed(where, regex.status());
    step.regex = std::move(*regex);
  } else {
    return UnsupportedType("pre_tokenizer", type, "ByteLevel, Metaspace, Split, Sequence");
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

void PreTokenizer::Apply(const Step& step, absl::string_view text, bool at_start, Emit out) {
  // Isolated split: the matches and the text between them each become a
  // piece; only the first can still begin at the start of the input.
  // byte_level maps each piece into the byte alphabet as it is cut.
  const auto split_on = [&](const Regex& regex, absl::string_view t, bool keep_matches, bool byte_level) {
    std::string mapped;
    const auto emit = [&](size_t b, size_t e) {
      if (e <= b) return;
      const absl::string_view piece = t.substr(b, e - b);
      if (byte_level) {
        mapped = BytesToByteLevel(piece);
        out(mapped, at_start && b == 0);
      } else {
        out(piece, at_start && b == 0);
      }
    };
    size_t pos = 0;
    regex.ForEachMatch(t, [&](size_t b, size_t e) {
      emit(pos, b);
      if (keep_matches) emit(b, e);
      pos = e;
    });
    emit(pos, t.size());
  };

  switch (step.kind) {
    case Kind::kByteLevel: {
      std::string prefixed;
      if (step.add_prefix_space && !absl::StartsWith(text, " ")) {
        prefixed = absl::StrCat(" ", text);
        text = prefixed;
      }
      if (step.use_regex) {
        split_on(Gpt2SplitRegex(), text, /*keep_matches=*/true, /*byte_level=*/true);
      } else {
        out(BytesToByteLevel(text), at_start);
      }
      break;
    }
    case Kind::kMetaspace: {
      std::string t = absl::StrReplaceAll(text, {{" ", step.replacement}});
      const bool prepend = step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && at_start);
      if (prepend && !absl::StartsWith(t, step.replacement)) t.insert(0, step.replacement);
      if (!step.split) {
        out(t, at_start);
        break;
      }
      // Each replacement character starts a new word ("merged with next").
      const absl::string_view v = t;
      size_t begin = 0;
      for (size_t pos = v.find(step.replacement, 1); pos != absl::string_view::npos;
           pos = v.find(step.replacement, pos + 1)) {
        out(v.substr(begin, pos - begin), at_start && begin == 0);
        begin = pos;
      }
      if (begin < v.size()) out(v.substr(begin), at_start && begin == 0);
      break;
    }
    case Kind::kSplit:
      split_on(*step.regex, text, !step.remove_matches, /*byte_level=*/false);
      break;
  }
}

void PreTokenizer::Run(size_t k, absl::string_view text, bool at_start,
                       absl::FunctionRef<void(absl::string_view)> emit) const {
  if (k == steps_.size()) {
    if (!text.empty()) emit(text);
    return;
  }
  Apply(steps_[k], text, at_start,
        [&](absl::string_view piece, bool piece_at_start) { Run(k + 1, piece, piece_at_start, emit); });
}

void PreTokenizer::Split(absl::string_view segment, bool at_start,
                         absl::FunctionRef<void(absl::string_view word)> emit) const {
  Run(0, segment, at_start, emit);
}

void PreTokenizer::Split(absl::string_view segment, bool at_start,
                         std::vector<std::string>* words) const {
  Split(segment, at_start, [words](absl::string_view w) { words->emplace_back(w); });
}

}  // namespace loupe::lm
