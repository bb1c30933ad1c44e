// Text corpora for the LM job kinds: reading, the held-out split, and
// tokenizing a text for scoring.
//
// lm.train and lm.eval both go through ScoringIds, so a text is turned into
// the same ids in both and lm.eval of an lm.train model on the held-out text
// reproduces the train job's bits_per_byte.
//
// Stateless functions; thread-safe (the Tokenizer is immutable).
#ifndef LOUPE_WORKERS_LM_JOBS_CORPUS_H_
#define LOUPE_WORKERS_LM_JOBS_CORPUS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {

// Reads the file at `path` (at most `max_bytes` bytes when > 0, cut back to
// a character boundary). The text must be non-empty, valid UTF-8: tokenizers
// would repair ill-formed bytes to U+FFFD, and then bits per byte would no
// longer describe the file. Errors are INVALID_ARGUMENT starting with
// `context` (e.g. "lm.train parameter 'corpus': ") and say where the first
// ill-formed byte is.
absl::StatusOr<std::string> ReadUtf8Text(const std::string& path, int64_t max_bytes, absl::string_view context);

// The largest n' <= n such that text[0, n') ends on a character boundary.
size_t Utf8Boundary(absl::string_view text, size_t n);

struct CorpusSplit {
  absl::string_view train;
  absl::string_view val;
};
// The last ~val_fraction of the bytes are held out. The cut is moved forward
// to the next character boundary, so both halves are valid UTF-8; either may
// be empty for tiny texts.
CorpusSplit SplitHeldOut(absl::string_view text, double val_fraction);

// The ids a text is scored with: the tokenizer's BOS (else its EOS, e.g.
// GPT-2's <|endoftext|>) as context, then Encode(text) without the
// post-processor's specials. Loss conventions (loss.h) score ids[1..n), so
// every token of the text is predicted and the sum is -log P(text). A
// tokenizer with neither token gets no prefix: its first token is context
// only (counted in the bytes, never predicted).
std::vector<int64_t> ScoringIds(const Tokenizer& tokenizer, absl::string_view text);

// Encode(text, false) in pieces of about `chunk_bytes`, calling `between`
// after each (for cancellation); a non-OK status from it stops and is
// returned. Pieces are cut only after a '\n' with a printable, non-space
// ASCII character on each side ("x\ny"): there the GPT-2 split pattern makes
// "\n" a word of its own whether or not the text continues, so for byte-level
// tokenizers the ids equal one Encode of the whole text. (SentencePiece-style
// tokenizers prepend "▁" to each piece, so for them they differ slightly.)
// A text without such places is encoded in one piece.
absl::StatusOr<std::vector<int32_t>> EncodeInChunks(const Tokenizer& tokenizer, absl::string_view text,
                                                    size_t chunk_bytes, const std::function<absl::Status()>& between);

// Splits text into pieces of at least `chunk_bytes` (but the last) at the
// cut points EncodeInChunks uses, e.g. as documents for tokenizer training
// (which pre-tokenizes each on its own: these cuts change no word).
std::vector<absl::string_view> ChunkAtLines(absl::string_view text, size_t chunk_bytes);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_JOBS_CORPUS_H_
