// Training a byte-level BPE tokenizer (GPT-2 style) on a corpus.
//
// The result is an ordinary Tokenizer whose ToJsonString()/SaveJson() is a
// Hugging Face tokenizer.json: ByteLevel pre-tokenizer, post-processor and
// decoder, BPE model with vocab and merges, special tokens as added tokens.
// Training is deterministic: the same corpus and options give the same file.
// Stateless function; thread-safe.
#ifndef LOUPE_WORKERS_LM_TOKENIZER_BPE_TRAINER_H_
#define LOUPE_WORKERS_LM_TOKENIZER_BPE_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {

struct BpeTrainerOptions {
  // Total size: special tokens + the 256 byte tokens + one token per merge.
  // Training stops early if no pair is left to merge.
  int32_t vocab_size = 8192;
  // Given ids 0, 1, ... in this order, marked special, never merged.
  std::vector<std::string> special_tokens;
  // Pairs seen fewer times than this are not merged.
  int64_t min_frequency = 2;
};

// texts: documents (or lines); each is pre-tokenized on its own with the GPT-2
// split pattern, so words never span two of them.
// Errors: InvalidArgument for a vocab_size below specials + 256, or empty or
// repeated special tokens.
absl::StatusOr<std::unique_ptr<Tokenizer>> TrainByteLevelBpe(absl::Span<const std::string> texts,
                                                             const BpeTrainerOptions& options);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_TOKENIZER_BPE_TRAINER_H_
