// Text generation from a CausalLM: greedy decoding, or sampling with
// temperature, top-k and top-p (nucleus) filtering, with a KV cache.
//
// Sampling draws on the CPU from a generator seeded with `seed`, so a seed
// gives the same tokens whatever device the model runs on. Generate switches
// the model to eval() for the call (restoring the mode after) and runs under
// torch::NoGradGuard; it needs the model to itself for that time.
#ifndef LOUPE_WORKERS_LM_MODEL_GENERATE_H_
#define LOUPE_WORKERS_LM_MODEL_GENERATE_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/hooks.h"

namespace loupe::lm {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  // false: greedy (argmax; temperature, top_k, top_p and seed are unused).
  bool do_sample = false;
  double temperature = 1.0;  // > 0; logits are divided by it
  int64_t top_k = 0;         // 0: off; else keep the k most likely tokens
  double top_p = 1.0;        // 1: off; else keep the smallest set of most likely tokens whose mass reaches top_p
  uint64_t seed = 0;
  // A row stops after emitting one of these (and is then padded with that
  // token); generation ends when every row has stopped. Empty: run to
  // max_new_tokens. ModelConfig::EosTokenIds() gives the model's.
  std::vector<int64_t> stop_tokens;
  // false: recompute the whole sequence each step (slow; for testing the cache).
  bool use_cache = true;
  // Applied in every forward call, e.g. to steer: first over the prompt
  // ([B, T]), then over each new token alone ([B, 1]) when use_cache — so a
  // [T] position mask fits only the first call; steer with mask-free hooks.
  const Hooks* hooks = nullptr;
};

struct GenerateResult {
  torch::Tensor tokens;              // int64 [B, T + n] on the CPU: prompt, then generated tokens
  std::vector<int64_t> new_tokens;   // per row, tokens generated up to and including its stop token
};

// prompt: int64 [B, T], every row the same length (no padding). INVALID_ARGUMENT
// for bad options, or a prompt the model's Forward would reject (including
// T + max_new_tokens past GPT-2's n_positions).
absl::StatusOr<GenerateResult> Generate(CausalLM& model, const torch::Tensor& prompt, const GenerateOptions& options);

// One sampling step on logits [B, V] (float; any device): applies temperature,
// top-k, top-p, then draws one token per row from `gen` (a CPU generator).
// Greedy when !options.do_sample. Returns int64 [B] on the CPU.
torch::Tensor SampleNextTokens(const torch::Tensor& logits, const GenerateOptions& options, at::Generator& gen);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_GENERATE_H_
