// Reads the arrays an sae.dark_matter job may be given as files instead of a
// model: activation rows [n, d_model] and token ids [n], as
//   .safetensors — the file's only tensor, or the one named `preferred`
//                  ("activations" / "token_ids") when there are several;
//   .npy         — NumPy format 1.0/2.0/3.0, C order, little-endian
//                  float16/32/64 or int32/64.
// Stateless; thread-safe.
#ifndef LOUPE_WORKERS_DARK_MATTER_ARRAY_FILE_H_
#define LOUPE_WORKERS_DARK_MATTER_ARRAY_FILE_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace loupe::dark_matter {

// INVALID_ARGUMENT names the file and what is wrong with it.
absl::StatusOr<torch::Tensor> ReadArrayFile(const std::string& path, const std::string& preferred);

}  // namespace loupe::dark_matter

#endif  // LOUPE_WORKERS_DARK_MATTER_ARRAY_FILE_H_
