#include "workers/lm/model/gpt2.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace loupe::lm {
namespace gpt2 {

Attention::Attention(const ModelConfig& c, const torch::TensorOptions& opts) {
  c_attn = register_module("c_attn", std::make_shared<layers::Conv1D>(c.d_model, 3 * c.d_model, opts));
  c_proj = register_module("c_proj", std::make_shared<layers::Conv1D>(c.d_model, c.d_model, opts));
}

Mlp::Mlp(const ModelConfig& c, const torch::TensorOptions& opts) {
  c_fc = register_module("c_fc", std::make_shared<layers::Conv1D>(c.d_model, c.d_mlp, opts));
  c_proj = register_module("c_proj", std::make_shared<layers::Conv1D>(c.d_mlp, c.d_model, opts));
}

Block::Block(const ModelConfig& c, const torch::TensorOptions& opts) {
  ln_1 = register_module("ln_1", std::make_shared<layers::LayerNorm>(c.d_model, c.norm_eps, opts));
  attn = register_module("attn", std::make_shared<Attention>(c, opts));
  ln_2 = register_module("ln_2", std::make_shared<layers::LayerNorm>(c.d_model, c.norm_eps, opts));
  mlp = register_module("mlp", std::make_shared<Mlp>(c, opts));
}

Transformer::Transformer(const ModelConfig& c, const torch::TensorOptions& opts) {
  wte = register_module("wte", std::make_shared<layers::Embedding>(c.vocab_size, c.d_model, opts));
  wpe = register_module("wpe", std::make_shared<layers::Embedding>(c.max_positions, c.d_model, opts));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    blocks.push_back(std::make_shared<Block>(c, opts));
    h->push_back(blocks.back());
  }
  h = register_module("h", h);
  ln_f = register_module("ln_f", std::make_shared<layers::LayerNorm>(c.d_model, c.norm_eps, opts));
}

}  // namespace gpt2

Gpt2LM::Gpt2LM(const ModelConfig& config, const torch::TensorOptions& opts) : CausalLM(config) {
  transformer_ = register_module("transformer", std::make_shared<gpt2::Transformer>(config, opts));
  if (!config.tie_word_embeddings) {
    lm_head_ = register_module("lm_head",
                               std::make_shared<layers::Linear>(config.d_model, config.vocab_size, false, opts));
  }
}

std::vector<std::string> Gpt2LM::CheckpointNames(const std::string& name) const {
  constexpr absl::string_view kPrefix = "transformer.";
  if (absl::StartsWith(name, kPrefix)) return {name, name.substr(kPrefix.size())};
  return {name};
}

bool Gpt2LM::IsIgnoredCheckpointTensor(const std::string& name) const {
  // h.{i}.attn.bias / h.{i}.attn.masked_bias: the causal mask and its fill
  // value, saved as buffers by older transformers versions; Loupe builds the
  // mask itself.
  std::vector<absl::string_view> parts = absl::StrSplit(name, '.');
  if (!parts.empty() && parts[0] == "transformer") parts.erase(parts.begin());
  int layer = 0;
  if (parts.size() == 4 && parts[0] == "h" && absl::SimpleAtoi(parts[1], &layer) && parts[2] == "attn" &&
      (parts[3] == "bias" || parts[3] == "masked_bias")) {
    return true;
  }
  // A tied head's duplicate.
  return config().tie_word_embeddings && name == "lm_head.weight";
}

double Gpt2LM::InitStd(const std::string& name) const {
  // GPT-2 scales the projections that write into the residual stream by
  // 1/sqrt(2 n_layer) so its variance does not grow with depth.
  if (absl::EndsWith(name, "c_proj.weight")) {
    return config().initializer_range / std::sqrt(2.0 * static_cast<double>(config().n_layers));
  }
  return config().initializer_range;
}

torch::Tensor Gpt2LM::ForwardImpl(const torch::Tensor& ids, const ForwardOptions& o) {
  const ModelConfig& c = config();
  const int64_t past = o.cache != nullptr ? o.cache->length() : 0;
  const int64_t T = ids.size(1);
  torch::Tensor pos = torch::arange(past, past + T, ids.options());
  torch::Tensor x = (*transformer_->wte)(ids) + (*transformer_->wpe)(pos);  // [B, T, d] + [T, d]
  if (is_training() && c.embd_pdrop > 0) x = torch::dropout(x, c.embd_pdrop, true);
  const int64_t n_run = o.stop_at_layer >= 0 ? o.stop_at_layer : c.n_layers;
  for (int64_t l = 0; l < n_run; ++l) x = BlockForward(static_cast<int>(l), x, o);
  if (o.stop_at_layer >= 0) return x;
  x = (*transformer_->ln_f)(x);
  const torch::Tensor& head = lm_head_ ? lm_head_->weight : transformer_->wte->weight;
  return torch::linear(x, head).to(torch::kFloat);
}

torch::Tensor Gpt2LM::BlockForward(int l, torch::Tensor x, const ForwardOptions& o) {
  using internal::RunHook;
  const ModelConfig& c = config();
  gpt2::Block& b = *transformer_->blocks[l];
  const int64_t B = x.size(0), T = x.size(1), H = c.n_heads, D = c.head_dim;
  const bool training = is_training();

  x = RunHook(o, HookPoint::kResidPre, l, x);
  torch::Tensor qkv = (*b.attn->c_attn)((*b.ln_1)(x));  // [B, T, 3d]: q | k | v
  std::vector<torch::Tensor> parts = qkv.split(c.d_model, -1);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, H, D}).transpose(1, 2); };
  auto [k, v] = internal::AppendToCache(o.cache, l, c.n_layers, heads(parts[1]), heads(parts[2]));
  double scale = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(D)) : 1.0;
  if (c.scale_attn_by_inverse_layer_idx) scale /= static_cast<double>(l + 1);
  torch::Tensor a = internal::CausalAttention(heads(parts[0]), k, v, scale, c.attn_pdrop, training);
  a = (*b.attn->c_proj)(a.transpose(1, 2).reshape({B, T, c.d_model}));
  if (training && c.resid_pdrop > 0) a = torch::dropout(a, c.resid_pdrop, true);
  a = RunHook(o, HookPoint::kAttnOut, l, a);
  x = x + a;
  x = RunHook(o, HookPoint::kResidMid, l, x);

  torch::Tensor m = (*b.mlp->c_proj)(internal::Activate(c.activation, (*b.mlp->c_fc)((*b.ln_2)(x))));
  if (training && c.resid_pdrop > 0) m = torch::dropout(m, c.resid_pdrop, true);
  m = RunHook(o, HookPoint::kMlpOut, l, m);
  x = x + m;
  return RunHook(o, HookPoint::kResidPost, l, x);
}

}  // namespace loupe::lm
