#include "workers/lm/model/llama.h"

#include <cmath>

#include "absl/strings/match.h"

namespace loupe::lm {
namespace llama {

Attention::Attention(const ModelConfig& c, const torch::TensorOptions& opts) {
  const int64_t q_out = c.n_heads * c.head_dim, kv_out = c.n_kv_heads * c.head_dim;
  q_proj = register_module("q_proj", std::make_shared<layers::Linear>(c.d_model, q_out, c.qkv_bias, opts));
  k_proj = register_module("k_proj", std::make_shared<layers::Linear>(c.d_model, kv_out, c.qkv_bias, opts));
  v_proj = register_module("v_proj", std::make_shared<layers::Linear>(c.d_model, kv_out, c.qkv_bias, opts));
  o_proj = register_module("o_proj", std::make_shared<layers::Linear>(q_out, c.d_model, c.o_bias, opts));
}

Mlp::Mlp(const ModelConfig& c, const torch::TensorOptions& opts) {
  gate_proj = register_module("gate_proj", std::make_shared<layers::Linear>(c.d_model, c.d_mlp, c.mlp_bias, opts));
  up_proj = register_module("up_proj", std::make_shared<layers::Linear>(c.d_model, c.d_mlp, c.mlp_bias, opts));
  down_proj = register_module("down_proj", std::make_shared<layers::Linear>(c.d_mlp, c.d_model, c.mlp_bias, opts));
}

Block::Block(const ModelConfig& c, const torch::TensorOptions& opts) {
  input_layernorm = register_module("input_layernorm", std::make_shared<layers::RmsNorm>(c.d_model, c.norm_eps, opts));
  self_attn = register_module("self_attn", std::make_shared<Attention>(c, opts));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<layers::RmsNorm>(c.d_model, c.norm_eps, opts));
  mlp = register_module("mlp", std::make_shared<Mlp>(c, opts));
}

Model::Model(const ModelConfig& c, const torch::TensorOptions& opts) {
  embed_tokens = register_module("embed_tokens", std::make_shared<layers::Embedding>(c.vocab_size, c.d_model, opts));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    blocks.push_back(std::make_shared<Block>(c, opts));
    layers_list->push_back(blocks.back());
  }
  layers_list = register_module("layers", layers_list);
  norm = register_module("norm", std::make_shared<layers::RmsNorm>(c.d_model, c.norm_eps, opts));
}

std::pair<torch::Tensor, torch::Tensor> RopeTables(int64_t start, int64_t n, int64_t head_dim, double theta,
                                                   const ModelConfig::RopeScaling& scaling, torch::Device device) {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::Tensor exponent = torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(torch::kLong).device(device))
                               .to(torch::kFloat) /
                           static_cast<double>(head_dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(theta, exponent);                          // [hd/2]
  using Scaling = ModelConfig::RopeScaling;
  if (scaling.type == Scaling::kLinear) {
    inv_freq = inv_freq / scaling.factor;
  } else if (scaling.type == Scaling::kLlama3) {
    const double original = static_cast<double>(scaling.original_max_positions);
    const double low_freq_wavelen = original / scaling.low_freq_factor;
    const double high_freq_wavelen = original / scaling.high_freq_factor;
    torch::Tensor wavelen = 2 * M_PI / inv_freq;
    torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
    torch::Tensor smooth =
        (original / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
    torch::Tensor smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
    torch::Tensor medium = wavelen.ge(high_freq_wavelen).logical_and(wavelen.le(low_freq_wavelen));
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  torch::Tensor angles = torch::arange(start, start + n, f32).unsqueeze(1) * inv_freq;  // [n, hd/2]
  torch::Tensor emb = torch::cat({angles, angles}, -1);
  return {emb.cos(), emb.sin()};
}

namespace {

// x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1] for the halves
// x1, x2 of the head dimension: the rotation of pairs (i, i + hd/2).
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace
}  // namespace llama

LlamaLM::LlamaLM(const ModelConfig& config, const torch::TensorOptions& opts) : CausalLM(config) {
  model_ = register_module("model", std::make_shared<llama::Model>(config, opts));
  if (!config.tie_word_embeddings) {
    lm_head_ = register_module("lm_head",
                               std::make_shared<layers::Linear>(config.d_model, config.vocab_size, false, opts));
  }
}

bool LlamaLM::IsIgnoredCheckpointTensor(const std::string& name) const {
  // Older transformers saved the RoPE frequencies as a buffer; they follow
  // from rope_theta.
  if (absl::StartsWith(name, "model.layers.") && absl::EndsWith(name, ".self_attn.rotary_emb.inv_freq")) return true;
  return config().tie_word_embeddings && name == "lm_head.weight";
}

torch::Tensor LlamaLM::ForwardImpl(const torch::Tensor& ids, const ForwardOptions& o) {
  const ModelConfig& c = config();
  const int64_t past = o.cache != nullptr ? o.cache->length() : 0;
  torch::Tensor x = (*model_->embed_tokens)(ids);
  auto [cos, sin] = llama::RopeTables(past, ids.size(1), c.head_dim, c.rope_theta, c.rope_scaling, x.device());
  cos = cos.to(x.scalar_type());
  sin = sin.to(x.scalar_type());
  const int64_t n_run = o.stop_at_layer >= 0 ? o.stop_at_layer : c.n_layers;
  for (int64_t l = 0; l < n_run; ++l) x = BlockForward(static_cast<int>(l), x, cos, sin, o);
  if (o.stop_at_layer >= 0) return x;
  x = (*model_->norm)(x);
  const torch::Tensor& head = lm_head_ ? lm_head_->weight : model_->embed_tokens->weight;
  return torch::linear(x, head).to(torch::kFloat);
}

torch::Tensor LlamaLM::BlockForward(int l, torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                                    const ForwardOptions& o) {
  using internal::RunHook;
  const ModelConfig& c = config();
  llama::Block& b = *model_->blocks[l];
  llama::Attention& at = *b.self_attn;
  const int64_t B = x.size(0), T = x.size(1), D = c.head_dim;

  x = RunHook(o, HookPoint::kResidPre, l, x);
  torch::Tensor h = (*b.input_layernorm)(x);
  auto heads = [&](const torch::Tensor& t, int64_t n) { return t.view({B, T, n, D}).transpose(1, 2); };
  torch::Tensor q = llama::ApplyRope(heads(at.q_proj->operator()(h), c.n_heads), cos, sin);
  torch::Tensor k = llama::ApplyRope(heads(at.k_proj->operator()(h), c.n_kv_heads), cos, sin);
  torch::Tensor v = heads(at.v_proj->operator()(h), c.n_kv_heads);
  std::tie(k, v) = internal::AppendToCache(o.cache, l, c.n_layers, k, v);
  torch::Tensor a = internal::CausalAttention(q, k, v, 1.0 / std::sqrt(static_cast<double>(D)), c.attn_pdrop,
                                              is_training());
  a = (*at.o_proj)(a.transpose(1, 2).reshape({B, T, c.n_heads * D}));
  a = RunHook(o, HookPoint::kAttnOut, l, a);
  x = x + a;
  x = RunHook(o, HookPoint::kResidMid, l, x);

  h = (*b.post_attention_layernorm)(x);
  torch::Tensor m = (*b.mlp->down_proj)(internal::Activate(c.activation, (*b.mlp->gate_proj)(h)) *
                                        (*b.mlp->up_proj)(h));
  m = RunHook(o, HookPoint::kMlpOut, l, m);
  x = x + m;
  return RunHook(o, HookPoint::kResidPost, l, x);
}

}  // namespace loupe::lm
