// SaeModel: a trained sparse autoencoder of any supported architecture, as
// every SAE consumer in Loupe (sae.eval, the dark-matter analysis) uses it,
// whatever trained it: Loupe's sae.train, SAELens, or Gemma Scope.
//
//   n   = x, or LN(x) = (x - mean(x)) / (std(x) + 1e-5) per row when
//         input_norm is layer_norm (SAELens's normalize_activations
//         "layer_norm", Bussmann et al.'s input_unit_norm; std unbiased)
//   pre = (n - b_dec) W_enc + b_enc     (n - b_dec only if apply_b_dec_to_input)
//   z   = relu      : ReLU(pre)
//         topk      : the k largest of ReLU(pre) per row, others 0
//         batchtopk : ReLU(pre) where pre > threshold (the inference form;
//                     training keeps the top k × batch of the whole batch)
//         jumprelu  : pre where pre > threshold, else 0 (threshold > 0)
//   x^  = z W_dec + b_dec, mapped back by x^ * std(x) + mean(x) under layer_norm
// Shapes are SAELens's: W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc
// [d_sae], b_dec [d_in], threshold [d_sae].
//
// Loading (LoadSae) accepts
//   - a SAELens directory (cfg.json + sae_weights.safetensors), architecture
//     "standard" (= relu), "topk", "batchtopk" or "jumprelu";
//   - a sae_weights.safetensors file with its cfg.json beside it or given;
//   - a Gemma Scope params.npz (W_enc, W_dec, b_enc, b_dec, threshold: a
//     JumpReLU SAE).
// Saving (SaveSaeLensDir) writes what SAELens v6 loads: relu as "standard",
// topk with k, jumprelu with its threshold tensor, and batchtopk as
// "jumprelu" with every latent's threshold set to the estimated batch
// threshold (what SAELens does when it saves a BatchTopK SAE for inference).
//
// A SaeModel is a plain value holding tensors (float32 after loading); its
// methods are const, build no autograd graph of their own unless the tensors
// require grad, and are thread-compatible.
#ifndef LOUPE_WORKERS_SAE_SAE_MODEL_H_
#define LOUPE_WORKERS_SAE_SAE_MODEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace loupe::sae {

enum class SaeArchitecture { kRelu, kTopK, kBatchTopK, kJumpRelu };

// Per-row input normalisation applied before encoding and undone after
// decoding (it cannot be folded into the weights: it depends on the row).
enum class InputNorm { kNone, kLayerNorm };

// Rows standardised as SAELens's "layer_norm" does: centred by their mean,
// divided by their (unbiased) std + 1e-5. An all-zero row stays zero.
struct NormalizedRows {
  torch::Tensor x;     // [n, d]
  torch::Tensor mean;  // [n, 1]
  torch::Tensor std;   // [n, 1]
};
NormalizedRows LayerNormRows(const torch::Tensor& x);

// Loupe's names: "relu", "topk", "batchtopk", "jumprelu".
std::string ArchitectureName(SaeArchitecture a);
// Accepts Loupe's names and SAELens's ("standard" for relu).
absl::StatusOr<SaeArchitecture> ParseArchitecture(absl::string_view name);

struct SaeModel {
  SaeArchitecture architecture = SaeArchitecture::kTopK;
  torch::Tensor W_enc, W_dec, b_enc, b_dec;
  torch::Tensor threshold;  // [d_sae]; jumprelu and batchtopk, else undefined
  int64_t k = 0;            // topk and batchtopk (mean active per row in training)
  bool apply_b_dec_to_input = true;
  InputNorm input_norm = InputNorm::kNone;
  // SAELens cfg.json "metadata" (model_name, hook_name, ...) when known.
  nlohmann::json metadata = nlohmann::json::object();

  int64_t d_in() const { return W_dec.size(1); }
  int64_t d_sae() const { return W_dec.size(0); }

  // Shapes, k and threshold consistent with the architecture.
  absl::Status Validate() const;

  // x in the SAE's own input space: LayerNormRows(x).x under layer_norm, else x.
  torch::Tensor Normalize(const torch::Tensor& x) const;
  torch::Tensor PreActivations(const torch::Tensor& x) const;  // [n, d_sae]
  torch::Tensor Encode(const torch::Tensor& x) const;          // dense z [n, d_sae]
  // z W_dec + b_dec: in the SAE's own input space, which under layer_norm is
  // the normalised one (Denormalize maps it back given the input rows).
  torch::Tensor Decode(const torch::Tensor& z) const;  // [n, d_in]
  // Decoder output `out` for input rows `x`, back in x's space (identity
  // without input normalisation).
  torch::Tensor Denormalize(const torch::Tensor& out, const torch::Tensor& x) const;
  // x^ for rows x, in x's space.
  torch::Tensor Reconstruct(const torch::Tensor& x) const { return Denormalize(Decode(Encode(x)), x); }

  // The same model with every tensor detached and moved to `device`/float32.
  SaeModel To(torch::Device device) const;
};

// See the header comment for what `path` may be. `config_path` (optional)
// names the cfg.json of a lone safetensors file. Errors: NOT_FOUND for a
// missing file, INVALID_ARGUMENT naming the file and the problem.
absl::StatusOr<SaeModel> LoadSae(const std::string& path, const std::string& config_path = "");

// Writes cfg.json and sae_weights.safetensors (float32) into `dir` (created
// if missing); model.metadata becomes cfg.json's "metadata".
absl::Status SaveSaeLensDir(const std::string& dir, const SaeModel& model);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAE_MODEL_H_
