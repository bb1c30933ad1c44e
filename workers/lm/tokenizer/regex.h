// A compiled regular expression for tokenizer patterns, backed by PCRE2 in
// UTF + UCP mode (with JIT where the platform has it).
//
// Patterns are written as in Hugging Face tokenizer.json, whose regexes run on
// Oniguruma: \s there means Unicode White_Space (which includes U+0085 and
// excludes U+FEFF), so Compile rewrites \s and \S into that explicit set
// rather than trusting PCRE2's own, subtly different, UCP \s.
//
// Immutable after Compile; every method is const and thread-safe (each call
// uses its own match data). Not copyable; owns the compiled code.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_REGEX_H_
#define LOUPE_WORKERS_LM_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pcre2_real_code_8;

namespace loupe::lm {

// Unicode White_Space as the contents of a regex character class.
inline constexpr char kWhiteSpaceClass[] =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

class Regex {
 public:
  // Fails (InvalidArgument) with PCRE2's message on a bad pattern, or
  // (Unimplemented) on \S inside a character class, which has no rewrite.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(absl::string_view pattern);

  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls f(begin, end) with the byte ranges of the successive
  // non-overlapping, non-empty matches in text, left to right. text must be
  // valid UTF-8.
  void ForEachMatch(absl::string_view text, absl::FunctionRef<void(size_t, size_t)> f) const;

  // The same ranges, appended to spans.
  void FindAll(absl::string_view text, std::vector<std::pair<size_t, size_t>>* spans) const;

  // Whether the whole of text matches.
  bool FullMatch(absl::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex(std::string pattern, pcre2_real_code_8* code) : pattern_(std::move(pattern)), code_(code) {}

  std::string pattern_;  // as given, before the \s rewrite
  pcre2_real_code_8* code_;
};

// The Oniguruma-to-PCRE2 rewrite that Compile applies (exposed for tests).
absl::StatusOr<std::string> RewriteWhiteSpaceClasses(absl::string_view pattern);

bool IsUnicodeWhiteSpace(char32_t c);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_REGEX_H_
