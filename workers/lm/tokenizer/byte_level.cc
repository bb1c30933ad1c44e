#include "workers/lm/tokenizer/byte_level.h"

#include <array>
#include <cstdlib>
#include <iostream>

#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

struct Tables {
  std::array<char32_t, 256> code_point;
  std::array<std::string, 256> utf8;
  // The same UTF-8 as fixed arrays (every stand-in is 1 or 2 bytes), for
  // the per-byte loop of BytesToByteLevel.
  std::array<std::array<char, 2>, 256> utf8_bytes;
  std::array<uint8_t, 256> utf8_len;
  // Code points used are < 0x144; -1 marks characters that stand for no byte.
  std::array<int16_t, 0x144> byte_of;

  Tables() {
    byte_of.fill(-1);
    char32_t shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t c = printable ? static_cast<char32_t>(b) : 0x100 + shifted++;
      code_point[b] = c;
      AppendUtf8(c, &utf8[b]);
      utf8_len[b] = static_cast<uint8_t>(utf8[b].size());
      utf8_bytes[b] = {utf8[b][0], utf8_len[b] > 1 ? utf8[b][1] : '\0'};
      byte_of[c] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables* tables = new Tables();
  return *tables;
}

}  // namespace

const std::string& ByteLevelChar(uint8_t b) { return GetTables().utf8[b]; }

char32_t ByteLevelCodePoint(uint8_t b) { return GetTables().code_point[b]; }

std::string BytesToByteLevel(absl::string_view bytes) {
  const Tables& t = GetTables();
  std::string out(bytes.size() * 2, '\0');
  size_t n = 0;
  for (const char c : bytes) {
    const uint8_t b = static_cast<uint8_t>(c);
    out[n] = t.utf8_bytes[b][0];
    out[n + 1] = t.utf8_bytes[b][1];
    n += t.utf8_len[b];
  }
  out.resize(n);
  return out;
}

bool ByteLevelToBytes(absl::string_view text, std::string* out) {
  const Tables& t = GetTables();
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) return false;
    const char32_t c = DecodeUtf8At(text, i, n);
    if (c >= t.byte_of.size() || t.byte_of[c] < 0) return false;
    out->push_back(static_cast<char>(t.byte_of[c]));
    i += n;
  }
  return true;
}

const Regex& Gpt2SplitRegex() {
  static const Regex* regex = [] {
    absl::StatusOr<std::unique_ptr<Regex>> r = Regex::Compile(kGpt2SplitPattern);
    if (!r.ok()) {
      // A constant pattern: failing here means a broken PCRE2 build.
      std::cerr << "GPT-2 split pattern does not compile: " << r.status() << "\n";
      std::abort();
    }
    return r->release();
  }();
  return *regex;
}

}  // namespace loupe::lm
