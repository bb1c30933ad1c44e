// UTF-8 helpers shared by the tokenizer pieces. Pure functions; thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_UTF8_H_
#define LOUPE_WORKERS_LM_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace loupe::lm {

// Length in bytes of the well-formed UTF-8 sequence starting at s[i], or 0 if
// the bytes there are not one (truncated, overlong, surrogate, > U+10FFFF).
size_t Utf8SequenceLength(absl::string_view s, size_t i);

// The code point of the well-formed sequence at s[i] (Utf8SequenceLength > 0).
char32_t DecodeUtf8At(absl::string_view s, size_t i, size_t len);

// Appends the UTF-8 encoding of code point c.
void AppendUtf8(char32_t c, std::string* out);

// The text with each maximal ill-formed subsequence replaced by U+FFFD, the
// Unicode "substitution of maximal subparts" rule that Rust's
// String::from_utf8_lossy (and so Hugging Face decoding) follows.
std::string Utf8Lossy(absl::string_view s);

bool IsValidUtf8(absl::string_view s);

// Splits s into its characters; s must be valid UTF-8.
template <typename F>
void ForEachUtf8Char(absl::string_view s, F&& f) {
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) n = 1;  // not reached for valid input; never loop forever
    f(s.substr(i, n));
    i += n;
  }
}

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_UTF8_H_
