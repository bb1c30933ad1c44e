#include "workers/lm/model/causal_lm.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace loupe::lm {

torch::Tensor CausalLM::Forward(const torch::Tensor& ids, const ForwardOptions& options) {
  absl::Status s = CheckForward(ids, options);
  TORCH_CHECK(s.ok(), std::string(s.message()));
  torch::Tensor x = ids.to(device(), torch::kLong);
  if (options.cache != nullptr && static_cast<int64_t>(options.cache->keys.size()) != NumLayers()) {
    options.cache->keys.resize(NumLayers());
    options.cache->values.resize(NumLayers());
  }
  return ForwardImpl(x, options);
}

torch::Tensor CausalLM::Forward(const torch::Tensor& ids, const Hooks& hooks) {
  ForwardOptions o;
  o.hooks = &hooks;
  return Forward(ids, o);
}

absl::Status CausalLM::CheckForward(const torch::Tensor& ids, const ForwardOptions& o) const {
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) < 1 || ids.size(0) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model input ids must be a [batch, seq] tensor with seq >= 1, got ",
        ids.defined() ? c10::str(ids.sizes()) : std::string("an undefined tensor")));
  }
  if (ids.scalar_type() != torch::kLong && ids.scalar_type() != torch::kInt) {
    return absl::InvalidArgumentError(absl::StrCat("model input ids must be int64 (or int32), got ",
                                                   c10::toString(ids.scalar_type())));
  }
  // The embedding lookup would fail too, but on CUDA as an unrecoverable
  // device-side assert; checking here keeps bad ids a recoverable error.
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= VocabSize()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", lo < 0 ? lo : hi, " is outside the vocabulary [0, ", VocabSize(), ")"));
  }
  const int64_t past = o.cache != nullptr ? o.cache->length() : 0;
  const int64_t end = past + ids.size(1);
  if (config_.architecture == Architecture::kGpt2 && end > MaxPositions()) {
    return absl::InvalidArgumentError(absl::StrCat("sequence of ", end, " positions exceeds GPT-2's n_positions ",
                                                   MaxPositions(), " (its position embeddings end there)"));
  }
  if (config_.sliding_window.has_value() && end > *config_.sliding_window) {
    return absl::UnimplementedError(absl::StrCat("sequence of ", end, " positions exceeds sliding_window ",
                                                 *config_.sliding_window,
                                                 "; sliding-window attention is not implemented"));
  }
  if (o.cache != nullptr) {
    if (o.stop_at_layer >= 0) return absl::InvalidArgumentError("stop_at_layer cannot be combined with a KV cache");
    if (past > 0 && o.cache->batch_size() != ids.size(0)) {
      return absl::InvalidArgumentError(absl::StrCat("KV cache holds ", o.cache->batch_size(),
                                                     " sequences but ids has ", ids.size(0), " rows"));
    }
  }
  if (o.stop_at_layer > NumLayers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop_at_layer ", o.stop_at_layer, " is past the model's ", NumLayers(), " blocks"));
  }
  if (o.hooks != nullptr) return o.hooks->Validate(NumLayers());
  return absl::OkStatus();
}

void CausalLM::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor p = item.value();
    const bool is_norm = name.find("norm") != std::string::npos || name.find(".ln_") != std::string::npos;
    if (p.dim() == 1) {
      p.fill_(is_norm && absl::EndsWith(name, ".weight") ? 1.0 : 0.0);
    } else {
      p.copy_(torch::randn(p.sizes(), gen, torch::kFloat) * InitStd(name));
    }
  }
}

namespace internal {

std::pair<torch::Tensor, torch::Tensor> AppendToCache(KVCache* cache, int layer, int n_layers, torch::Tensor k,
                                                      torch::Tensor v) {
  if (cache == nullptr) return {std::move(k), std::move(v)};
  torch::Tensor& ck = cache->keys[layer];
  torch::Tensor& cv = cache->values[layer];
  // cat rather than a preallocated buffer: the copy is O(S) per step, the
  // same order as the attention itself, and keeps the cache autograd-safe.
  ck = ck.defined() ? torch::cat({ck, k}, 2) : k;
  cv = cv.defined() ? torch::cat({cv, v}, 2) : v;
  return {ck, cv};
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              double scale, double dropout, bool training) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), rep = H / Hkv, past = S - T;
  // [B, H, T, D] -> [B, Hkv, rep * T, D]: row r * T + t of group g is query
  // head g * rep + r at time t.
  torch::Tensor qg = q.reshape({B, Hkv, rep * T, D});
  torch::Tensor scores = torch::matmul(qg, k.transpose(-2, -1)) * scale;  // [B, Hkv, rep*T, S]
  if (T > 1) {
    // Query t (absolute position past + t) sees keys 0 .. past + t. A single
    // new token (T == 1) sees the whole cache, so needs no mask.
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    torch::Tensor qpos = torch::arange(past, past + T, opts).unsqueeze(1);
    torch::Tensor kpos = torch::arange(S, opts).unsqueeze(0);
    torch::Tensor hidden = (kpos > qpos).repeat({rep, 1});  // [rep*T, S]
    scores = scores.masked_fill(hidden, -std::numeric_limits<float>::infinity());
  }
  torch::Tensor probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
  if (training && dropout > 0) probs = torch::dropout(probs, dropout, /*train=*/true);
  return torch::matmul(probs, v).view({B, H, T, D});
}

torch::Tensor Activate(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::kGeluTanh: return torch::gelu(x, "tanh");
    case Activation::kGelu: return torch::gelu(x);
    case Activation::kRelu: return torch::relu(x);
    case Activation::kSilu: return torch::silu(x);
  }
  return x;
}

}  // namespace internal
}  // namespace loupe::lm
