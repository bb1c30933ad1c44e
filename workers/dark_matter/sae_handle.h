// An SAE as the dark-matter analyses use it: workers/sae's SaeModel (any
// architecture: relu/standard, topk, batchtopk, jumprelu; SAELens
// directories, lone safetensors, Gemma Scope params.npz) plus the name the
// report gives it, and chunked helpers so wide SAEs stay within memory.
//
// Immutable after loading; methods run without autograd and are
// thread-compatible.
#ifndef LOUPE_WORKERS_DARK_MATTER_SAE_HANDLE_H_
#define LOUPE_WORKERS_DARK_MATTER_SAE_HANDLE_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "workers/sae/sae_model.h"

namespace loupe::dark_matter {

struct SaeHandle {
  std::string name;  // how the report names it (the reference given)
  sae::SaeModel model;

  int64_t d_in() const { return model.d_in(); }
  int64_t d_sae() const { return model.d_sae(); }
  const torch::Tensor& W_dec() const { return model.W_dec; }
  const torch::Tensor& b_dec() const { return model.b_dec; }
  std::string architecture() const { return sae::ArchitectureName(model.architecture); }

  // Dense codes [n, d_sae] (>= 0) of rows x [n, d_in].
  torch::Tensor Encode(const torch::Tensor& x) const;
  // codes [n, d_sae] of rows x → x^ [n, d_in] in x's space (the SAE's
  // per-row input normalisation, if any, undone with x's statistics).
  torch::Tensor Decode(const torch::Tensor& codes, const torch::Tensor& x) const;
  // x as the SAE's decoder sees it (normalised rows for a layer_norm SAE):
  // the target of codes built directly against W_dec and b_dec.
  torch::Tensor InputSpace(const torch::Tensor& x) const;
  // Decode(Encode(x)), in chunks of `chunk` rows.
  torch::Tensor Reconstruct(const torch::Tensor& x, int64_t chunk = 4096) const;
  // Per-row count of non-zero codes, float32 [n].
  torch::Tensor L0(const torch::Tensor& x, int64_t chunk = 4096) const;

  SaeHandle To(torch::Device device) const { return {name, model.To(device)}; }
};

// Anything sae::LoadSae reads; errors carry `name`.
absl::StatusOr<SaeHandle> LoadSaeHandle(const std::string& path, const std::string& name);

// A TopK SAE from tensors (tests, and the SAEs analysis 4 trains).
SaeHandle TopKHandle(std::string name, torch::Tensor W_enc, torch::Tensor b_enc, torch::Tensor W_dec,
                     torch::Tensor b_dec, int64_t k);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_SAE_HANDLE_H_
