#include "workers/dark_matter/sae_handle.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace loupe::dark_matter {

torch::Tensor SaeHandle::Encode(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  return model.Encode(x);
}

torch::Tensor SaeHandle::Decode(const torch::Tensor& codes, const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  return model.Denormalize(model.Decode(codes), x);
}

torch::Tensor SaeHandle::InputSpace(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  return model.Normalize(x);
}

torch::Tensor SaeHandle::Reconstruct(const torch::Tensor& x, int64_t chunk) const {
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += chunk) {
    const torch::Tensor rows = x.slice(0, i, i + chunk);
    parts.push_back(Decode(Encode(rows), rows));
  }
  return parts.empty() ? torch::empty_like(x) : torch::cat(parts, 0);
}

torch::Tensor SaeHandle::L0(const torch::Tensor& x, int64_t chunk) const {
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += chunk) {
    parts.push_back((Encode(x.slice(0, i, i + chunk)) > 0).sum(1).to(torch::kFloat32));
  }
  return parts.empty() ? torch::empty({0}) : torch::cat(parts, 0);
}

absl::StatusOr<SaeHandle> LoadSaeHandle(const std::string& path, const std::string& name) {
  absl::StatusOr<sae::SaeModel> m = sae::LoadSae(path);
  if (!m.ok()) return absl::Status(m.status().code(), absl::StrCat("SAE ", name, ": ", m.status().message()));
  return SaeHandle{name, *std::move(m)};
}

SaeHandle TopKHandle(std::string name, torch::Tensor W_enc, torch::Tensor b_enc, torch::Tensor W_dec,
                     torch::Tensor b_dec, int64_t k) {
  sae::SaeModel m;
  m.architecture = sae::SaeArchitecture::kTopK;
  m.k = k;
  m.W_enc = W_enc.detach().to(torch::kFloat32);
  m.b_enc = b_enc.detach().to(torch::kFloat32);
  m.W_dec = W_dec.detach().to(torch::kFloat32);
  m.b_dec = b_dec.detach().to(torch::kFloat32);
  return SaeHandle{std::move(name), std::move(m)};
}

}  // namespace loupe::dark_matter
