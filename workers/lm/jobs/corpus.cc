#include "workers/lm/jobs/corpus.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/strings/str_cat.h"
#include "workers/lm/tokenizer/utf8.h"

namespace loupe::lm {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool IsPrintableAscii(char c) { return c > 0x20 && c < 0x7F; }

// A safe cut point p (see EncodeInChunks): text[p-2] printable, text[p-1] ==
// '\n', text[p] printable.
bool IsSafeCut(absl::string_view text, size_t p) {
  return p >= 2 && p < text.size() && text[p - 1] == '\n' && IsPrintableAscii(text[p - 2]) &&
         IsPrintableAscii(text[p]);
}

// The first safe cut at or after `from`, or text.size() if none.
size_t NextSafeCut(absl::string_view text, size_t from) {
  for (size_t p = text.find('\n', from > 0 ? from - 1 : 0); p != absl::string_view::npos;
       p = text.find('\n', p + 1)) {
    if (IsSafeCut(text, p + 1)) return p + 1;
  }
  return text.size();
}

}  // namespace

absl::StatusOr<std::string> ReadUtf8Text(const std::string& path, int64_t max_bytes, absl::string_view context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(context, "cannot read ", path));
  std::string text;
  if (max_bytes > 0) {
    // Up to 3 bytes past the limit, so that a character the limit cuts is
    // seen whole (and then dropped), not mistaken for ill-formed UTF-8.
    text.resize(static_cast<size_t>(max_bytes) + 3);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
  } else {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(context, "error reading ", path));
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(context, path, " is empty"));
  // Find the first ill-formed byte (IsValidUtf8 would not say where).
  for (size_t i = 0; i < text.size();) {
    const size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      // A sequence cut by the max_bytes read-ahead is not an error.
      if (max_bytes > 0 && i >= static_cast<size_t>(max_bytes)) break;
      return absl::InvalidArgumentError(absl::StrCat(
          context, path, " is not valid UTF-8 (byte ", i, " = 0x",
          absl::Hex(static_cast<unsigned char>(text[i]), absl::kZeroPad2),
          "); Loupe's tokenizers take text, as Hugging Face's do: convert it first, e.g. iconv -f latin1 -t utf-8"));
    }
    i += n;
  }
  if (max_bytes > 0 && text.size() > static_cast<size_t>(max_bytes)) {
    text.resize(Utf8Boundary(text, static_cast<size_t>(max_bytes)));
    if (text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "max_bytes ", max_bytes, " is shorter than the first character of ", path));
    }
  }
  return text;
}

size_t Utf8Boundary(absl::string_view text, size_t n) {
  n = std::min(n, text.size());
  while (n > 0 && n < text.size() && IsContinuationByte(text[n])) --n;
  return n;
}

CorpusSplit SplitHeldOut(absl::string_view text, double val_fraction) {
  const double want = std::ceil(static_cast<double>(text.size()) * std::clamp(val_fraction, 0.0, 1.0));
  size_t cut = text.size() - std::min(text.size(), static_cast<size_t>(want));
  // Forward to a character boundary: the held-out part never grows past the
  // fraction asked, and never starts inside a character.
  while (cut < text.size() && IsContinuationByte(text[cut])) ++cut;
  return {text.substr(0, cut), text.substr(cut)};
}

std::vector<int64_t> ScoringIds(const Tokenizer& tokenizer, absl::string_view text) {
  std::vector<int32_t> body = tokenizer.Encode(text, /*add_special_tokens=*/false);
  std::vector<int64_t> ids;
  ids.reserve(body.size() + 1);
  std::optional<int32_t> context = tokenizer.bos_id();
  if (!context.has_value()) context = tokenizer.eos_id();
  if (context.has_value()) ids.push_back(*context);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<absl::string_view> ChunkAtLines(absl::string_view text, size_t chunk_bytes) {
  std::vector<absl::string_view> out;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = NextSafeCut(text, std::min(text.size(), begin + std::max<size_t>(chunk_bytes, 1)));
    out.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> EncodeInChunks(const Tokenizer& tokenizer, absl::string_view text,
                                                    size_t chunk_bytes, const std::function<absl::Status()>& between) {
  std::vector<int32_t> ids;
  // Byte-level BPE on English averages ~4 bytes a token; reserving avoids
  // regrowing a vector of tens of millions of ids.
  ids.reserve(text.size() / 3 + 16);
  for (absl::string_view piece : ChunkAtLines(text, chunk_bytes)) {
    std::vector<int32_t> part = tokenizer.Encode(piece, /*add_special_tokens=*/false);
    ids.insert(ids.end(), part.begin(), part.end());
    if (between) {
      if (absl::Status s = between(); !s.ok()) return s;
    }
  }
  return ids;
}

}  // namespace loupe::lm
