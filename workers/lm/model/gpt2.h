// Gpt2LM: GPT-2 (Radford et al. 2019) as Hugging Face's GPT2LMHeadModel
// defines it — learned position embeddings, pre-LayerNorm blocks, fused q/k/v
// projection (c_attn) stored as Conv1D weights [in, out], GELU (tanh
// approximation, "gelu_new") MLP, final LayerNorm, output head tied to the
// token embedding (an untied lm_head.weight when tie_word_embeddings is false).
//
// Parameter names are GPT2LMHeadModel's: transformer.wte.weight,
// transformer.wpe.weight, transformer.h.{i}.{ln_1,attn.c_attn,attn.c_proj,
// ln_2,mlp.c_fc,mlp.c_proj}.{weight,bias}, transformer.ln_f.{weight,bias}.
// Checkpoints without the "transformer." prefix (GPT2Model, the original
// OpenAI conversions) load too.
//
// Same ownership and threading rules as CausalLM.
#ifndef LOUPE_WORKERS_LM_MODEL_GPT2_H_
#define LOUPE_WORKERS_LM_MODEL_GPT2_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/layers.h"

namespace loupe::lm {

namespace gpt2 {

class Attention : public torch::nn::Module {
 public:
  Attention(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Conv1D> c_attn, c_proj;
};

class Mlp : public torch::nn::Module {
 public:
  Mlp(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Conv1D> c_fc, c_proj;
};

class Block : public torch::nn::Module {
 public:
  Block(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::LayerNorm> ln_1, ln_2;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
};

// HF's GPT2Model: the "transformer." part of the checkpoint.
class Transformer : public torch::nn::Module {
 public:
  Transformer(const ModelConfig& c, const torch::TensorOptions& opts);
  std::shared_ptr<layers::Embedding> wte, wpe;
  torch::nn::ModuleList h;
  std::vector<std::shared_ptr<Block>> blocks;  // h's elements, typed
  std::shared_ptr<layers::LayerNorm> ln_f;
};

}  // namespace gpt2

class Gpt2LM final : public CausalLM {
 public:
  // Parameters uninitialised (see InitWeights, LoadHfModel).
  Gpt2LM(const ModelConfig& config, const torch::TensorOptions& opts);

  std::vector<std::string> CheckpointNames(const std::string& name) const override;
  bool IsIgnoredCheckpointTensor(const std::string& name) const override;

 protected:
  const torch::Tensor& EmbeddingWeight() const override { return transformer_->wte->weight; }
  torch::Tensor ForwardImpl(const torch::Tensor& ids, const ForwardOptions& options) override;
  double InitStd(const std::string& name) const override;

 private:
  torch::Tensor BlockForward(int layer, torch::Tensor x, const ForwardOptions& o);

  std::shared_ptr<gpt2::Transformer> transformer_;
  std::shared_ptr<layers::Linear> lm_head_;  // only when untied
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_GPT2_H_
