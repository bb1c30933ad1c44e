#include "workers/sae/topk_sae.h"

#include "absl/strings/str_cat.h"
#include "workers/sae/geometric_median.h"

namespace loupe::sae {
namespace {

std::string Shape(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) absl::StrAppend(&s, i ? ", " : "", sizes[i]);
  return s + "]";
}

}  // namespace

TopKSae::TopKSae(int64_t d_in, int64_t d_sae, int64_t k, torch::Device device, at::Generator& gen)
    : k_(k) {
  TORCH_CHECK(d_in > 0 && d_sae > 0 && k > 0 && k <= d_sae, "TopKSae: bad sizes");
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  torch::Tensor w = torch::randn({d_sae, d_in}, gen, f32);
  w = w / w.norm(2, 1, true).clamp_min(1e-12);
  W_dec_ = w.to(device).requires_grad_(true);
  W_enc_ = w.t().contiguous().to(device).requires_grad_(true);
  b_enc_ = torch::zeros({d_sae}, f32.device(device)).requires_grad_(true);
  b_dec_ = torch::zeros({d_in}, f32.device(device)).requires_grad_(true);
}

absl::StatusOr<TopKSae> TopKSae::FromWeights(torch::Tensor W_enc, torch::Tensor b_enc,
                                             torch::Tensor W_dec, torch::Tensor b_dec, int64_t k) {
  if (W_dec.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("W_dec must be [d_sae, d_in], got ", Shape(W_dec.sizes())));
  }
  const int64_t d_sae = W_dec.size(0), d_in = W_dec.size(1);
  auto expect = [&](const char* name, const torch::Tensor& t,
                    std::vector<int64_t> want) -> absl::Status {
    if (t.sizes() != c10::IntArrayRef(want)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be ", Shape(want), " for d_in ", d_in,
                                                     ", d_sae ", d_sae, "; got ", Shape(t.sizes())));
    }
    return absl::OkStatus();
  };
  for (absl::Status s : {expect("W_enc", W_enc, {d_in, d_sae}), expect("b_enc", b_enc, {d_sae}),
                         expect("b_dec", b_dec, {d_in})}) {
    if (!s.ok()) return s;
  }
  if (k < 1 || k > d_sae) {
    return absl::InvalidArgumentError(absl::StrCat("k must be in [1, d_sae = ", d_sae, "], got ", k));
  }
  TopKSae sae;
  auto leaf = [&](const torch::Tensor& t) {
    return t.detach().to(W_dec.device(), torch::kFloat).contiguous().requires_grad_(true);
  };
  sae.W_enc_ = leaf(W_enc);
  sae.b_enc_ = leaf(b_enc);
  sae.W_dec_ = leaf(W_dec);
  sae.b_dec_ = leaf(b_dec);
  sae.k_ = k;
  return sae;
}

TopKCode TopKSae::Encode(const torch::Tensor& x) const {
  torch::Tensor pre = torch::addmm(b_enc_, x - b_dec_, W_enc_);
  auto [values, indices] = torch::relu(pre).topk(k_, /*dim=*/1, /*largest=*/true, /*sorted=*/false);
  return {pre, values, indices};
}

torch::Tensor TopKSae::DecodeWithoutBias(const torch::Tensor& values, const torch::Tensor& indices) const {
  const int64_t batch = indices.size(0), width = indices.size(1);
  torch::Tensor rows = W_dec_.index_select(0, indices.reshape(-1)).view({batch, width, d_in()});
  return torch::bmm(values.unsqueeze(1), rows).squeeze(1);
}

torch::Tensor TopKSae::Decode(const torch::Tensor& values, const torch::Tensor& indices) const {
  return DecodeWithoutBias(values, indices) + b_dec_;
}

void TopKSae::InitDecoderBias(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec_.copy_(GeometricMedian(x.to(b_dec_.device(), torch::kFloat)));
}

void TopKSae::RemoveParallelDecoderGrad() {
  torch::NoGradGuard no_grad;
  torch::Tensor g = W_dec_.grad();
  if (!g.defined()) return;
  // Rows are unit norm (NormalizeDecoder runs after every step), so the
  // parallel part of row r's gradient is (g_r . w_r) w_r.
  g.sub_((g * W_dec_).sum(1, true) * W_dec_);
}

void TopKSae::NormalizeDecoder() {
  torch::NoGradGuard no_grad;
  W_dec_.div_(W_dec_.norm(2, 1, true).clamp_min(1e-12));
}

}  // namespace loupe::sae
