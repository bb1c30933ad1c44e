// GPT-2's byte-level alphabet and pre-tokenizer pattern.
//
// Byte-level BPE works on bytes, but tokenizer.json stores tokens as text, so
// every byte has a printable stand-in character: printable Latin-1 bytes
// stand for themselves and the other 68 bytes take U+0100..U+0143 in order.
// Stateless functions over immutable tables; thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_BYTE_LEVEL_H_
#define LOUPE_WORKERS_LM_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "workers/lm/tokenizer/regex.h"

namespace loupe::lm {

// The split pattern of Hugging Face's ByteLevel pre-tokenizer (GPT-2's).
inline constexpr char kGpt2SplitPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// UTF-8 of the character that stands for byte b.
const std::string& ByteLevelChar(uint8_t b);

// Code point of the character standing for byte b.
char32_t ByteLevelCodePoint(uint8_t b);

// Each byte of `bytes` replaced by its stand-in character.
std::string BytesToByteLevel(absl::string_view bytes);

// Inverse of BytesToByteLevel; false (out untouched past what was appended)
// if text holds a character that stands for no byte.
bool ByteLevelToBytes(absl::string_view text, std::string* out);

// kGpt2SplitPattern, compiled once.
const Regex& Gpt2SplitRegex();

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_BYTE_LEVEL_H_
