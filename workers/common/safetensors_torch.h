// LibTorch side of safetensors.h: torch::Tensor <-> safetensors files.
//
// Writing accepts tensors on any device and of any strides (they are copied
// to contiguous CPU memory first). Reading returns CPU tensors, either copies
// (the default: independent of the file) or views that share the File's
// memory and keep it alive through their deleter. Stateless functions;
// thread-safe as long as callers do not write the same tensors concurrently.
#ifndef LOUPE_WORKERS_COMMON_SAFETENSORS_TORCH_H_
#define LOUPE_WORKERS_COMMON_SAFETENSORS_TORCH_H_

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/common/safetensors.h"

namespace loupe::safetensors {

// UNIMPLEMENTED for dtypes the other side lacks (LibTorch 1.13 has no
// U16/U32/U64/F8; safetensors has no complex or quantized types).
absl::StatusOr<DType> DTypeFromTorch(c10::ScalarType type);
absl::StatusOr<c10::ScalarType> DTypeToTorch(DType dtype);

using TensorMap = std::map<std::string, torch::Tensor>;

absl::StatusOr<std::string> SerializeTensors(const TensorMap& tensors,
                                             const Metadata& metadata = {});
absl::Status SaveTensors(const std::string& path, const TensorMap& tensors,
                         const Metadata& metadata = {});

enum class LoadMode {
  kCopy,  // an independent CPU tensor
  // A view of the file's memory (no copy) that keeps the File alive. Writes to
  // it never reach the disk but are seen by other views of the same File.
  // Falls back to a copy when the bytes are not aligned to the element size.
  kShare,
};

absl::StatusOr<torch::Tensor> LoadTensor(const std::shared_ptr<const File>& file,
                                         absl::string_view name,
                                         LoadMode mode = LoadMode::kCopy);
// Every tensor of the file at `path`, copied.
absl::StatusOr<TensorMap> LoadTensors(const std::string& path);

}  // namespace loupe::safetensors

#endif  // LOUPE_WORKERS_COMMON_SAFETENSORS_TORCH_H_
