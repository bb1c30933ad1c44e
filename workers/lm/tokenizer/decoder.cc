#include "workers/lm/tokenizer/decoder.h"

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "workers/lm/tokenizer/byte_level.h"
#include "workers/lm/tokenizer/json_fields.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

// The byte of a "<0xXX>" token, if it is one.
std::optional<uint8_t> FallbackByte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = token[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + d;
  }
  return static_cast<uint8_t>(value);
}

std::vector<char32_t> CodePoints(absl::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    out.push_back(n == 0 ? 0xFFFD : DecodeUtf8At(s, i, n));
    i += n == 0 ? 1 : n;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::FromJson(const nlohmann::json& j) {
  auto d = std::unique_ptr<Decoder>(new Decoder());
  if (absl::Status s = AddSteps(j, &d->steps_); !s.ok()) return s;
  return d;
}

absl::Status Decoder::AddSteps(const nlohmann::json& j, std::vector<Step>* steps) {
  std::string type;
  if (absl::Status s = GetType(j, "decoder", &type); !s.ok()) return s;
  const std::string where = absl::StrCat("decoder (", type, ")");
  if (type == "Sequence") {
    const auto list = j.find("decoders");
    if (list == j.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": \"decoders\" must be an array"));
    }
    for (const nlohmann::json& child : *list) {
      if (absl::Status s = AddSteps(child, steps); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    absl::StatusOr<Replacement> r = Replacement::FromJson(j, where);
    if (!r.ok()) return r.status();
    step.replacement = *std::move(r);
  } else if (type == "ByteFallback") {
    step.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    std::string content;
    if (absl::Status s = GetString(j, "content", where, &content); !s.ok()) return s;
    const std::vector<char32_t> cps = CodePoints(content);
    if (cps.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: ", where, ": \"content\" must be one character"));
    }
    step.strip_char = cps[0];
    if (absl::Status s = GetInt(j, "start", where, &step.strip_start); !s.ok()) return s;
    if (absl::Status s = GetInt(j, "stop", where, &step.strip_stop); !s.ok()) return s;
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    if (absl::Status s = GetString(j, "replacement", where, &step.meta); !s.ok()) return s;
    bool add_prefix_space = true;
    if (absl::Status s = GetOptionalBool(j, "add_prefix_space", where, &add_prefix_space); !s.ok()) return s;
    step.meta_strip_first = add_prefix_space;
    std::optional<std::string> scheme;
    if (absl::Status s = GetOptionalString(j, "prepend_scheme", where, &scheme); !s.ok()) return s;
    if (scheme.has_value()) step.meta_strip_first = *scheme != "never";
  } else {
    return UnsupportedType("decoder", type,
                           "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

void Decoder::Apply(const Step& step, std::vector<std::string>* tokens) {
  switch (step.kind) {
    case Kind::kByteLevel: {
      // Each token maps back to bytes; one holding a character outside the
      // byte alphabet (an added token's text) is kept as its own UTF-8.
      std::string bytes;
      for (const std::string& t : *tokens) {
        const size_t mark = bytes.size();
        if (!ByteLevelToBytes(t, &bytes)) {
          bytes.resize(mark);
          bytes += t;
        }
      }
      *tokens = {Utf8Lossy(bytes)};
      break;
    }
    case Kind::kReplace:
      for (std::string& t : *tokens) t = step.replacement.Apply(t);
      break;
    case Kind::kByteFallback: {
      // Runs of <0xXX> tokens become their UTF-8 text; a run that is not
      // valid UTF-8 becomes one U+FFFD per byte.
      std::vector<std::string> out;
      std::string run;
      size_t run_len = 0;
      const auto flush = [&] {
        if (run_len == 0) return;
        if (IsValidUtf8(run)) {
          out.push_back(run);
        } else {
          for (size_t k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
        }
        run.clear();
        run_len = 0;
      };
      for (std::string& t : *tokens) {
        if (const std::optional<uint8_t> b = FallbackByte(t)) {
          run.push_back(static_cast<char>(*b));
          ++run_len;
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      *tokens = std::move(out);
      break;
    }
    case Kind::kFuse:
      *tokens = {absl::StrJoin(*tokens, "")};
      break;
    case Kind::kStrip:
      for (std::string& t : *tokens) {
        std::vector<char32_t> cps = CodePoints(t);
        size_t begin = 0, end = cps.size();
        while (begin < end && static_cast<int64_t>(begin) < step.strip_start && cps[begin] == step.strip_char) ++begin;
        for (int64_t k = 0; k < step.strip_stop && end > begin && cps[end - 1] == step.strip_char; ++k) --end;
        std::string s;
        for (size_t k = begin; k < end; ++k) AppendUtf8(cps[k], &s);
        t = std::move(s);
      }
      break;
    case Kind::kMetaspace:
      // Every replacement character becomes a space, except in the first
      // token, where it is dropped (it was prepended by the pre-tokenizer).
      for (size_t i = 0; i < tokens->size(); ++i) {
        const bool drop = i == 0 && step.meta_strip_first;
        (*tokens)[i] = absl::StrReplaceAll((*tokens)[i], {{step.meta, drop ? "" : " "}});
      }
      break;
  }
}

std::string Decoder::Decode(std::vector<std::string> tokens) const {
  for (const Step& step : steps_) Apply(step, &tokens);
  return absl::StrJoin(tokens, "");
}

}  // namespace loupe::lm
