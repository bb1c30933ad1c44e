#include "workers/lm/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {

bool IsUnicodeWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

absl::StatusOr<std::string> RewriteWhiteSpaceClasses(absl::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceClass) : absl::StrCat("[", kWhiteSpaceClass, "]");
      } else if (e == 'S') {
        if (in_class) {
          return absl::UnimplementedError(absl::StrCat(
              "regex pattern \"", pattern, "\": \\S inside a character class is not supported"));
        }
        out += absl::StrCat("[^", kWhiteSpaceClass, "]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // POSIX class such as [:alpha:]: copy through its closing ":]".
      const size_t end = pattern.find(":]", i + 2);
      if (end != absl::string_view::npos) {
        out.append(pattern.data() + i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(absl::string_view pattern) {
  absl::StatusOr<std::string> rewritten = RewriteWhiteSpaceClasses(pattern);
  if (!rewritten.ok()) return rewritten.status();
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten->data()), rewritten->size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("regex pattern \"", pattern, "\": ",
                                                   reinterpret_cast<const char*>(message),
                                                   " at offset ", offset));
  }
  // JIT is an optimisation only: without it (unsupported CPU, no executable
  // memory) the interpreter gives the same matches.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Regex>(new Regex(std::string(pattern), code));
}

Regex::~Regex() { pcre2_code_free(code_); }

namespace {

struct MatchDataDeleter {
  void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
};

// One match at or after start; falls back to the interpreter if the JIT
// gives up (its stack is small) so that a result never depends on JIT limits.
int MatchFrom(const pcre2_code* code, absl::string_view text, size_t start, uint32_t options,
              pcre2_match_data* data) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, data, nullptr);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    rc = pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     data, nullptr);
  }
  return rc;
}

}  // namespace

void Regex::FindAll(absl::string_view text, std::vector<std::pair<size_t, size_t>>* spans) const {
  ForEachMatch(text, [spans](size_t begin, size_t end) { spans->emplace_back(begin, end); });
}

void Regex::ForEachMatch(absl::string_view text, absl::FunctionRef<void(size_t, size_t)> f) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code_, nullptr));
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = MatchFrom(code_, text, pos, 0, data.get());
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      // Out of matching resources even in the interpreter (a pathological
      // pattern): keep the rest as one span rather than drop text.
      f(pos, text.size());
      return;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      f(begin, end);
      pos = end;
    } else {
      // Empty match: step over one character, as Oniguruma's iteration does.
      const size_t n = Utf8SequenceLength(text, begin);
      pos = begin + (n == 0 ? 1 : n);
    }
  }
}

bool Regex::FullMatch(absl::string_view text) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code_, nullptr));
  // The JIT does not take PCRE2_ENDANCHORED at match time: use the interpreter.
  return MatchFrom(code_, text, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_JIT, data.get()) >= 0;
}

}  // namespace loupe::lm
