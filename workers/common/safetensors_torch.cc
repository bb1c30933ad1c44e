#include "workers/common/safetensors_torch.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace loupe::safetensors {
namespace {

struct Pair {
  c10::ScalarType torch;
  DType st;
};

constexpr Pair kPairs[] = {
    {c10::ScalarType::Bool, DType::kBool},       {c10::ScalarType::Byte, DType::kU8},
    {c10::ScalarType::Char, DType::kI8},         {c10::ScalarType::Short, DType::kI16},
    {c10::ScalarType::Int, DType::kI32},         {c10::ScalarType::Long, DType::kI64},
    {c10::ScalarType::Half, DType::kF16},        {c10::ScalarType::BFloat16, DType::kBF16},
    {c10::ScalarType::Float, DType::kF32},       {c10::ScalarType::Double, DType::kF64},
};

// Holds the CPU copies whose bytes a TensorDataMap borrows.
absl::StatusOr<TensorDataMap> ToTensorData(const TensorMap& tensors,
                                           std::vector<torch::Tensor>* keep) {
  TensorDataMap out;
  keep->reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: tensor '", name, "' is undefined"));
    }
    if (t.layout() != torch::kStrided) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: tensor '", name, "' is not dense"));
    }
    absl::StatusOr<DType> dtype = DTypeFromTorch(t.scalar_type());
    if (!dtype.ok()) {
      return absl::Status(dtype.status().code(),
                          absl::StrCat("safetensors: tensor '", name, "': ", dtype.status().message()));
    }
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    keep->push_back(c);
    TensorData d;
    d.dtype = *dtype;
    d.shape.assign(c.sizes().begin(), c.sizes().end());
    d.bytes = c.numel() == 0 ? absl::string_view()
                             : absl::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes());
    out.emplace(name, std::move(d));
  }
  return out;
}

}  // namespace

absl::StatusOr<DType> DTypeFromTorch(c10::ScalarType type) {
  for (const Pair& p : kPairs) {
    if (p.torch == type) return p.st;
  }
  return absl::UnimplementedError(
      absl::StrCat("LibTorch dtype ", c10::toString(type), " has no safetensors equivalent"));
}

absl::StatusOr<c10::ScalarType> DTypeToTorch(DType dtype) {
  for (const Pair& p : kPairs) {
    if (p.st == dtype) return p.torch;
  }
  return absl::UnimplementedError(
      absl::StrCat("safetensors dtype ", DTypeName(dtype), " is not supported by this LibTorch"));
}

absl::StatusOr<std::string> SerializeTensors(const TensorMap& tensors, const Metadata& metadata) {
  std::vector<torch::Tensor> keep;
  absl::StatusOr<TensorDataMap> data = ToTensorData(tensors, &keep);
  if (!data.ok()) return data.status();
  return Serialize(*data, metadata);
}

absl::Status SaveTensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  std::vector<torch::Tensor> keep;
  absl::StatusOr<TensorDataMap> data = ToTensorData(tensors, &keep);
  if (!data.ok()) return data.status();
  return WriteFile(path, *data, metadata);
}

absl::StatusOr<torch::Tensor> LoadTensor(const std::shared_ptr<const File>& file,
                                         absl::string_view name, LoadMode mode) {
  const TensorInfo* info = file->Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("safetensors file '", file->name(), "' has no tensor '", name, "'"));
  }
  absl::StatusOr<c10::ScalarType> type = DTypeToTorch(info->dtype);
  if (!type.ok()) {
    return absl::Status(type.status().code(), absl::StrCat("safetensors file '", file->name(), "': tensor '",
                                                           name, "': ", type.status().message()));
  }
  absl::StatusOr<absl::string_view> bytes = file->Bytes(name);
  if (!bytes.ok()) return bytes.status();
  const auto options = torch::TensorOptions().dtype(*type).device(torch::kCPU);
  const c10::IntArrayRef sizes(info->shape);
  const bool aligned = reinterpret_cast<uintptr_t>(bytes->data()) % DTypeSize(info->dtype) == 0;
  if (mode == LoadMode::kShare && aligned && !bytes->empty()) {
    // The deleter owns a reference to the File, so the mapping outlives the
    // tensor and every view of it.
    std::shared_ptr<const File> keep = file;
    return torch::from_blob(const_cast<char*>(bytes->data()), sizes,
                            [keep](void*) mutable { keep.reset(); }, options);
  }
  torch::Tensor t = torch::empty(sizes, options);
  if (!bytes->empty()) std::memcpy(t.data_ptr(), bytes->data(), bytes->size());
  return t;
}

absl::StatusOr<TensorMap> LoadTensors(const std::string& path) {
  absl::StatusOr<std::shared_ptr<const File>> file = File::Open(path);
  if (!file.ok()) return file.status();
  TensorMap out;
  for (const auto& [name, info] : (*file)->tensors()) {
    absl::StatusOr<torch::Tensor> t = LoadTensor(*file, name, LoadMode::kCopy);
    if (!t.ok()) return t.status();
    out.emplace(name, *std::move(t));
  }
  return out;
}

}  // namespace loupe::safetensors
