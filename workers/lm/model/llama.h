// LlamaLM: the Llama family as Hugging Face's LlamaForCausalLM,
// MistralForCausalLM and Qwen2ForCausalLM define it — token embedding, blocks
// of RMSNorm -> grouped-query attention with rotary position embeddings
// (RoPE, base rope_theta, HF's half-split layout) -> residual, RMSNorm ->
// SwiGLU MLP (down(silu(gate(x)) * up(x))) -> residual, final RMSNorm, and an
// output head (lm_head, or the embedding when tie_word_embeddings).
// The variants differ only in what the config switches on: q/k/v biases
// (Qwen2 always; Llama's attention_bias also on o_proj), MLP biases (Llama's
// mlp_bias), an explicit head_dim, a sliding window (see ModelConfig).
//
// Parameter names: model.embed_tokens.weight, model.layers.{i}.
// {input_layernorm,post_attention_layernorm}.weight, model.layers.{i}.
// self_attn.{q,k,v,o}_proj.{weight,bias}, model.layers.{i}.mlp.
// {gate,up,down}_proj.{weight,bias}, model.norm.weight, lm_head.weight.
//
// Same ownership and threading rules as CausalLM.
#ifndef LOUPE_WORKERS_LM_MODEL_LLAMA_H_
#define LOUPE_WORKERS_LM_MODEL_LLAMA_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/layers.h"

namespace loupe::lm {

namespace llama {

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Linear> q_proj, k_proj, v_proj, o_proj;
};

class Mlp : public torch::nn::Module {
 public:
  Mlp(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Linear> gate_proj, up_proj, down_proj;
};

class Block : public torch::nn::Module {
 public:
  Block(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::RmsNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<Mlp> mlp;
};

// The "model." part of the checkpoint.
class Model : public torch::nn::Module {
 public:
  Model(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Embedding> embed_tokens;
  torch::nn::ModuleList layers_list;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<layers::RmsNorm> norm;
};

// cos and sin of the rotary angles for positions [start, start + n): [n,
// head_dim] each, computed in float32 exactly as HF does (inv_freq = 1 /
// theta^(2i/d), angle = position * inv_freq, the half repeated) so that
// long positions round the same way. `scaling` rescales inv_freq as HF's
// _compute_linear_scaling / _compute_llama3_parameters do.
std::pair<torch::Tensor, torch::Tensor> RopeTables(int64_t start, int64_t n, int64_t head_dim, double theta,
                                                   const ModelConfig::RopeScaling& scaling, torch::Device device);

}  // namespace llama

class LlamaLM final : public CausalLM {
 public:
  // Parameters uninitialised (see InitWeights, LoadHfModel).
  LlamaLM(const ModelConfig& config, const torch::TensorOptions& opts);

  bool IsIgnoredCheckpointTensor(const std::string& name) const override;

 protected:
  const torch::Tensor& EmbeddingWeight() const override { return model_->embed_tokens->weight; }
  torch::Tensor ForwardImpl(const torch::Tensor& ids, const ForwardOptions& options) override;

 private:
  torch::Tensor BlockForward(int layer, torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                             const ForwardOptions& o);

  std::shared_ptr<llama::Model> model_;
  std::shared_ptr<layers::Linear> lm_head_;  // only when untied
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_LLAMA_H_
