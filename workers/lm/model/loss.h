// Next-token loss, and bits per byte of a text.
//
// Per-token loss is the cross-entropy, in nats, of each next token given the
// tokens before it. Bits per byte divides a text's total loss by its length
// in UTF-8 bytes rather than in tokens:
//   bits_per_byte = (sum of per-token nats) / ln 2 / n_bytes
// so models with different tokenizers compare on the same text: the total is
// -log2 P(text) under the model whatever the segmentation.
//
// Scoring convention: ids[0] is context only — the model predicts ids[1..n).
// For the total to be -log P(text), ids should start with a token that is
// not part of the text (Llama's BOS; for GPT-2, <|endoftext|>), and n_bytes
// be the text's byte length. Without one, the first token's bytes are counted
// but never predicted, which flatters the model slightly.
//
// Stateless functions. EvaluateText puts the model in eval() for the call (and
// restores its mode), so it needs the model to itself meanwhile.
#ifndef LOUPE_WORKERS_LM_MODEL_LOSS_H_
#define LOUPE_WORKERS_LM_MODEL_LOSS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "workers/lm/model/causal_lm.h"

namespace loupe::lm {

// logits [B, T, V], ids [B, T] -> float32 [B, T-1]: out[b, t] = -log p(ids[b,
// t+1] | ids[b, <= t]). Differentiable (use its mean as a training loss).
torch::Tensor PerTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids);

// Mean of PerTokenLoss: the usual language-modelling training loss.
torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids);

// total_nats / ln 2 / n_bytes.
double BitsPerByte(double total_nats, int64_t n_bytes);

struct EvalOptions {
  // Tokens per forward pass; 0: min(max_positions, 2048). Texts longer than
  // this are scored in overlapping windows that advance by `stride` tokens,
  // each new token seeing at least window - stride tokens of context.
  int64_t window = 0;
  int64_t stride = 0;      // 0: window / 2
  int64_t batch_size = 4;  // windows per forward pass
};

struct TextEval {
  double total_nats = 0;
  int64_t n_tokens = 0;  // tokens scored: ids.size() - 1
  int64_t n_bytes = 0;
  double bits_per_byte = 0;
  double nats_per_token = 0;
  double perplexity = 0;         // exp(nats_per_token)
  std::vector<float> token_nats;  // [n_tokens]: loss of ids[i + 1]
};

// Scores ids[1..n) (see the convention above). INVALID_ARGUMENT for fewer
// than 2 ids, n_bytes <= 0, ids outside the vocabulary, bad options.
absl::StatusOr<TextEval> EvaluateText(CausalLM& model, absl::Span<const int64_t> ids, int64_t n_bytes,
                                      const EvalOptions& options = {});

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_LOSS_H_
