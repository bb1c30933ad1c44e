// Activations of a language model on a text corpus, as the SAE kinds consume
// them: one row [d_model] per token position, drawn from a hook point
// (hooks.h names: "blocks.L.hook_resid_post", ...).
//
// The corpus is tokenized once (ScoringIds conventions: BOS, else EOS, then
// the text) and cut into non-overlapping sequences of `context_length` tokens;
// with `prepend_bos` each sequence starts with the BOS/EOS token (as SAELens's
// prepend_bos does) and carries context_length - 1 text tokens. The first
// `skip_positions` positions of every sequence are dropped (the BOS and the
// attention-sink positions whose norms dwarf the rest). Sequences run through
// the model with Forward's stop_at_layer where the hook allows, so a hook on
// layer L costs L + 1 blocks, not the whole model.
//
// Rows come out through a shuffle buffer of `shuffle_buffer` rows (0: in
// corpus order): rows of many sequences are mixed so a batch does not come
// from one document. The source cycles over the corpus forever; epochs()
// says how often it wrapped. Every row comes with its token id (the token at
// that position, whose residual the row is) so callers can build per-token
// baselines.
//
// Position: Position() captures where the source is (the next sequence, the
// epoch count, the shuffle RNG's state and which (sequence, position) rows sit
// in the buffer, not the rows themselves) and Restore() brings a source
// created with the same model, tokenizer, text and options back there:
// buffered rows are recomputed by running their sequences through the model
// again, so the next batches are the same rows in the same order (equal up to
// float summation order, since the recomputation batches sequences
// differently), without the checkpoint holding the buffer's activations.
//
// Ownership: shares the model (read-only; grad mode is off inside Next).
// Not thread-safe: one caller at a time.
#ifndef LOUPE_WORKERS_LM_ACTIVATIONS_ACTIVATION_SOURCE_H_
#define LOUPE_WORKERS_LM_ACTIVATIONS_ACTIVATION_SOURCE_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/hooks.h"
#include "workers/lm/tokenizer/tokenizer.h"

namespace loupe::lm {

struct ActivationSourceOptions {
  std::string hook = "blocks.0.hook_resid_post";
  int64_t context_length = 128;
  bool prepend_bos = true;
  int64_t skip_positions = 1;
  int64_t shuffle_buffer = 0;
  // Sequences per model forward.
  int64_t batch_sequences = 8;
  uint64_t seed = 0;
};

struct ActivationBatch {
  torch::Tensor acts;       // float32 [n, d_model], on the model's device
  torch::Tensor token_ids;  // int64 [n], on the CPU
};

class ActivationSource {
 public:
  // Checks the options against the model and corpus (hook layer in range;
  // context_length in [skip_positions + 1, model positions]; the text gives
  // at least one full sequence). Errors are INVALID_ARGUMENT and name the
  // option ("hook", "context_length", "corpus", ...).
  static absl::StatusOr<std::unique_ptr<ActivationSource>> Create(std::shared_ptr<CausalLM> model,
                                                                  const Tokenizer& tokenizer,
                                                                  const std::string& text,
                                                                  const ActivationSourceOptions& options);

  // The next n rows (n >= 1).
  absl::StatusOr<ActivationBatch> Next(int64_t n);

  int64_t d_model() const;
  // Rows one pass over the corpus yields.
  int64_t rows_per_epoch() const;
  int64_t epochs() const { return epochs_; }
  const HookPoint& hook() const { return hook_; }
  // The token sequences in corpus order, [n_sequences, context_length] int64
  // (for evaluations that splice into the model on the same text).
  const torch::Tensor& sequences() const { return sequences_; }

  // Where the source is, as small CPU tensors for a checkpoint: "next_sequence",
  // "epochs" ([1] int64), "pending_rows" ([n] int64, sequence × context_length
  // + position of each buffered row, in buffer order), "rng" (uint8, the
  // shuffle generator's state as text).
  std::map<std::string, torch::Tensor> Position() const;
  // Back to a Position() of a source over the same corpus and options.
  // INVALID_ARGUMENT if an entry is missing or does not fit this corpus.
  absl::Status Restore(const std::map<std::string, torch::Tensor>& position);

 private:
  ActivationSource() = default;
  // Runs the model on the next `batch_sequences` sequences and appends their
  // rows to the pending buffer.
  absl::Status Refill();

  std::shared_ptr<CausalLM> model_;
  ActivationSourceOptions options_;
  HookPoint hook_;
  torch::Tensor sequences_;
  int64_t next_sequence_ = 0;
  int64_t epochs_ = 0;
  torch::Tensor pending_acts_;  // rows not yet handed out
  torch::Tensor pending_ids_;
  torch::Tensor pending_rows_;  // [n] int64 sequence × context_length + position
  std::mt19937_64 rng_;
};

// Runs `sequences` ([n, T] int64) through the model and returns the
// activations at `hook` for all positions, [n, T, d_model] float32
// (no shuffling, nothing skipped). Grad mode off.
absl::StatusOr<torch::Tensor> CollectActivations(CausalLM& model, const torch::Tensor& sequences,
                                                 const HookPoint& hook, int64_t batch_sequences = 8);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_ACTIVATIONS_ACTIVATION_SOURCE_H_
