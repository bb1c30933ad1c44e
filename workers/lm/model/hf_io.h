// Building models, and loading and saving them as Hugging Face model
// directories:
//   config.json                      (see config.h for the fields)
//   model.safetensors                one file, or
//   model-00001-of-0000N.safetensors + model.safetensors.index.json
//                                    ({"metadata": {"total_size": bytes},
//                                      "weight_map": {tensor: file}})
// with tensors in F32, F16 or BF16 under the HF names (gpt2.h, llama.h). A
// directory transformers saved loads unchanged, and one Loupe saves loads in
// transformers (AutoModelForCausalLM.from_pretrained): config.json carries
// architectures, model_type and torch_dtype; every safetensors file carries
// the {"format": "pt"} metadata transformers checks for.
//
// Files are read through workers/common/safetensors (memory-mapped; each
// tensor is copied once, straight into the parameter, converting dtype and
// device on the way). Stateless functions; a model being saved must not be
// trained at the same time.
#ifndef LOUPE_WORKERS_LM_MODEL_HF_IO_H_
#define LOUPE_WORKERS_LM_MODEL_HF_IO_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/lm/model/causal_lm.h"
#include "workers/lm/model/config.h"

namespace loupe::lm {

struct CreateOptions {
  torch::Device device = torch::kCPU;
  // Parameter (and compute) dtype: float32 on CPU; bfloat16 or float16 are
  // meant for accelerators.
  torch::ScalarType dtype = torch::kFloat;
  uint64_t seed = 0;  // for InitWeights
};

// A new model with HF's random initialisation, in eval() mode.
// INVALID_ARGUMENT for a config ValidateConfig rejects.
absl::StatusOr<std::shared_ptr<CausalLM>> CreateModel(const ModelConfig& config, const CreateOptions& options = {});

struct LoadOptions {
  torch::Device device = torch::kCPU;
  // nullopt: the checkpoint's own dtype (config.json torch_dtype).
  std::optional<torch::ScalarType> dtype = torch::kFloat;
  // Tensors in the checkpoint that the model has no use for are an error
  // (they usually mean a config/checkpoint mismatch) unless this is set, in
  // which case they are listed in warnings. Known leftovers (GPT-2's mask
  // buffers, rotary inv_freq, a tied head's copy) are always skipped.
  bool allow_unexpected_tensors = false;
};

struct LoadedModel {
  std::shared_ptr<CausalLM> model;  // in eval() mode
  std::vector<std::string> warnings;
};

// Errors: NOT_FOUND for a missing config.json / weights file / tensor (naming
// the tensor and the names tried), INVALID_ARGUMENT for a shape mismatch
// ("tensor T in F has shape [..], expected [..]"), a non-float tensor or an
// unexpected tensor, UNIMPLEMENTED for an unsupported architecture or
// feature, DATA_LOSS for an index that points at a tensor its shard lacks.
absl::StatusOr<LoadedModel> LoadHfModel(const std::string& dir, const LoadOptions& options = {});

struct SaveOptions {
  // nullopt: the model's dtype. Must be float32, float16 or bfloat16.
  std::optional<torch::ScalarType> dtype;
  // 0: one model.safetensors. Otherwise tensors are packed, in parameter
  // order, into shards of at most this many bytes (a tensor larger than that
  // gets a shard of its own), with model.safetensors.index.json.
  uint64_t max_shard_bytes = 0;
};

// Writes config.json and the weights into `dir` (created if needed). Weight
// files of an earlier save in `dir` (model.safetensors, model-*-of-*.
// safetensors, the index) are removed first, so transformers cannot pick up
// a stale one.
absl::Status SaveHfModel(const CausalLM& model, const std::string& dir, const SaveOptions& options = {});

// "float32", "float16", "bfloat16"; INVALID_ARGUMENT for other dtypes.
absl::StatusOr<std::string> TorchDtypeName(torch::ScalarType dtype);

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_HF_IO_H_
