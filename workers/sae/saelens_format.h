// SAELens's on-disk layout for a trained SAE: a directory holding
//   sae_weights.safetensors — W_enc [d_in, d_sae], W_dec [d_sae, d_in],
//                             b_enc [d_sae], b_dec [d_in] (float32 here);
//   cfg.json                — SAELens v6's SAEConfig.to_dict(): d_in, d_sae,
//                             dtype, device, apply_b_dec_to_input,
//                             normalize_activations, reshape_activations,
//                             metadata{...}, k (TopK only), architecture.
// SAE.load_from_disk() in SAELens reads such a directory.
//
// Stateless functions; thread-safe.
#ifndef LOUPE_WORKERS_SAE_SAELENS_FORMAT_H_
#define LOUPE_WORKERS_SAE_SAELENS_FORMAT_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loupe::sae {

inline constexpr char kSaeWeightsFile[] = "sae_weights.safetensors";
inline constexpr char kSaeConfigFile[] = "cfg.json";

struct SaeLensConfig {
  int64_t d_in = 0;
  int64_t d_sae = 0;
  std::string architecture = "topk";
  int64_t k = 0;  // TopK only (0: absent)
  std::string dtype = "float32";
  std::string device = "cpu";
  bool apply_b_dec_to_input = true;
  std::string normalize_activations = "none";
  std::string reshape_activations = "none";
  // SAELens's SAEMetadata: model_name, hook_name, context_size, ... (free-form).
  nlohmann::json metadata = nlohmann::json::object();
};

struct SaeLensWeights {
  torch::Tensor W_enc, W_dec, b_enc, b_dec;
  // Any other tensor of the file (e.g. a JumpReLU "threshold"), on read.
  std::map<std::string, torch::Tensor> extra;
};

struct SaeLensSae {
  SaeLensConfig cfg;
  SaeLensWeights weights;
};

// In SAELens's key order (SAEConfig.to_dict(): the dataclass fields, the
// subclass's "k" last, then "architecture").
nlohmann::ordered_json ConfigToJson(const SaeLensConfig& cfg);
// Checks types and values: d_in, d_sae >= 1; architecture a string; k in
// [1, d_sae] for "topk"; the optional fields of the right types.
absl::StatusOr<SaeLensConfig> ConfigFromJson(const nlohmann::json& json);

// cfg.json text (pretty-printed).
std::string ConfigJsonText(const SaeLensConfig& cfg);
// sae_weights.safetensors written to `path`: the four weights converted to
// cfg.dtype (only "float32" is written today) on the CPU; shapes checked
// against cfg.
absl::Status WriteSaeWeights(const std::string& path, const SaeLensWeights& weights,
                             const SaeLensConfig& cfg);
// Both files into `dir` (created if missing).
absl::Status WriteSaeLensDir(const std::string& dir, const SaeLensWeights& weights,
                             const SaeLensConfig& cfg);

// Reads and validates a directory: cfg.json parses and passes ConfigFromJson;
// the four tensors exist with the shapes cfg implies and the dtype it names.
absl::StatusOr<SaeLensSae> ReadSaeLensDir(const std::string& dir);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_SAELENS_FORMAT_H_
