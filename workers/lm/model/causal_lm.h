// CausalLM: the interface every decoder-only model in Loupe implements
// (Gpt2LM, LlamaLM), plus the KV cache and forward options they share.
//
// A CausalLM is a torch::nn::Module whose named_parameters() are exactly the
// Hugging Face checkpoint names of its model_type ("transformer.h.0.attn.
// c_attn.weight", "model.layers.0.self_attn.q_proj.weight", ...), so saving,
// loading and optimizers all see the same list. A tied output head is not a
// separate parameter: the embedding matrix is used for both.
//
// Ownership: models are handed out as std::shared_ptr<CausalLM> (what
// torch::nn::Module expects); the parameters live on device() in dtype().
// Models start in eval() mode (no dropout); call train() to train.
//
// Thread safety: Forward only reads the parameters, so concurrent Forward calls
// in inference (under torch::NoGradGuard, each with its own KVCache) are safe.
// Training, train()/eval(), to(), loading into and saving a model need the
// model to themselves.
#ifndef LOUPE_WORKERS_LM_MODEL_CAUSAL_LM_H_
#define LOUPE_WORKERS_LM_MODEL_CAUSAL_LM_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "workers/lm/model/config.h"
#include "workers/lm/model/hooks.h"

namespace loupe::lm {

// Keys and values of every position processed so far, so that generation
// computes each new token from the cache instead of re-running the prefix.
// One per sequence batch; Forward appends to it.
struct KVCache {
  // Per layer, [B, n_kv_heads, S, head_dim] in the model's dtype.
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;

  // S: the number of positions cached (0 when empty).
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  int64_t batch_size() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(0); }
  void Clear() {
    keys.clear();
    values.clear();
  }
};

struct ForwardOptions {
  const Hooks* hooks = nullptr;
  // When set, `ids` continue the cached sequence (their positions start at
  // cache->length()) and their keys/values are appended to it.
  KVCache* cache = nullptr;
  // >= 0: run only blocks [0, stop_at_layer) and return the residual stream
  // [B, T, d_model] (what blocks.<stop_at_layer>.hook_resid_pre sees) instead
  // of logits, skipping the rest — for harvesting activations. Not combinable
  // with a cache.
  int64_t stop_at_layer = -1;
};

class CausalLM : public torch::nn::Module {
 public:
  const ModelConfig& config() const { return config_; }
  int64_t NumLayers() const { return config_.n_layers; }
  int64_t DModel() const { return config_.d_model; }
  int64_t VocabSize() const { return config_.vocab_size; }
  int64_t MaxPositions() const { return config_.max_positions; }
  int64_t NumHeads() const { return config_.n_heads; }
  int64_t NumKvHeads() const { return config_.n_kv_heads; }
  int64_t HeadDim() const { return config_.head_dim; }
  torch::Device device() const { return EmbeddingWeight().device(); }
  torch::ScalarType dtype() const { return EmbeddingWeight().scalar_type(); }

  // ids: int64 [B, T] (on any device; moved to device()). Returns float32
  // logits [B, T, vocab] (or, with stop_at_layer, the residual stream in the
  // model's dtype). Builds an autograd graph unless grad mode is off.
  // Throws c10::Error for what CheckForward rejects.
  torch::Tensor Forward(const torch::Tensor& ids, const ForwardOptions& options = {});
  torch::Tensor Forward(const torch::Tensor& ids, const Hooks& hooks);

  // Why Forward would refuse these arguments: ids not int64 [B, T] with T >= 1
  // and values in [0, vocab); positions past n_positions (GPT-2's learned
  // positions end there) or past a sliding window; hooks on missing layers; a
  // cache of another batch size or combined with stop_at_layer.
  absl::Status CheckForward(const torch::Tensor& ids, const ForwardOptions& options = {}) const;

  // HF's initialisation for training from scratch: weights ~ N(0,
  // initializer_range) (GPT-2's residual output projections scaled by
  // 1/sqrt(2 n_layers)), biases 0, norm gains 1. Deterministic in `seed`
  // whatever the device (drawn on the CPU).
  void InitWeights(uint64_t seed);

  // Other names under which checkpoints store parameter `name` (GPT-2:
  // without the "transformer." prefix, as the original OpenAI-converted
  // files do). The canonical name comes first.
  virtual std::vector<std::string> CheckpointNames(const std::string& name) const { return {name}; }
  // Checkpoint tensors that are not parameters and are not needed: GPT-2's
  // causal-mask buffers, old Llama files' rotary inv_freq, a tied head's copy.
  virtual bool IsIgnoredCheckpointTensor(const std::string& name) const = 0;

 protected:
  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {}
  virtual const torch::Tensor& EmbeddingWeight() const = 0;
  virtual torch::Tensor ForwardImpl(const torch::Tensor& ids, const ForwardOptions& options) = 0;
  // Standard deviation InitWeights uses for matrix parameter `name`.
  virtual double InitStd(const std::string& name) const { return config_.initializer_range; }

 private:
  ModelConfig config_;
};

// Shared pieces of the architectures' forward passes.
namespace internal {

// Hook site helper: `x` unchanged when there are no hooks.
inline torch::Tensor RunHook(const ForwardOptions& o, HookPoint::Site site, int layer, torch::Tensor x) {
  if (o.hooks == nullptr || o.hooks->empty()) return x;
  return o.hooks->Run(HookPoint{site, layer}, std::move(x));
}

// Appends this step's k/v ([B, n_kv, T, hd]) to layer `layer` of `cache` (if
// any) and returns the keys/values of the whole sequence so far.
std::pair<torch::Tensor, torch::Tensor> AppendToCache(KVCache* cache, int layer, int n_layers, torch::Tensor k,
                                                      torch::Tensor v);

// Causal multi-head attention with grouped-query sharing.
//   q: [B, H, T, hd]; k, v: [B, Hkv, S, hd] with S >= T: the last T key
//   positions are the queries' own, the first S - T come from a cache.
// Query head h reads kv head h / (H / Hkv), as HF's repeat_kv arranges, but
// without copying k and v: the H / Hkv query heads of a group are stacked
// along the time axis and multiplied against the group's keys at once.
// Scores are softmaxed in float32. Returns [B, H, T, hd].
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              double scale, double dropout, bool training);

torch::Tensor Activate(Activation a, const torch::Tensor& x);

}  // namespace internal

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_CAUSAL_LM_H_
