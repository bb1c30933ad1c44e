#include "workers/dark_matter/array_file.h"

#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/common/safetensors_torch.h"
#include "workers/sae/npy_format.h"

namespace loupe::dark_matter {

namespace {

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// The whole array, copied out of the mapping (workers/sae's one .npy reader).
absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path) {
  absl::StatusOr<std::unique_ptr<sae::MappedNpy>> npy = sae::MappedNpy::Open(path);
  if (!npy.ok()) return npy.status();
  const sae::NpyHeader& h = (*npy)->header();
  return torch::from_blob(const_cast<char*>((*npy)->data()), h.shape, torch::TensorOptions().dtype(h.dtype))
      .clone();
}

}  // namespace

absl::StatusOr<torch::Tensor> ReadArrayFile(const std::string& path, const std::string& preferred) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) return Bad(path, "cannot be opened");
  char magic[6] = {};
  probe.read(magic, 6);
  if (std::memcmp(magic, "\x93NUMPY", 6) == 0) return ReadNpy(path);
  absl::StatusOr<safetensors::TensorMap> map = safetensors::LoadTensors(path);
  if (!map.ok()) return Bad(path, absl::StrCat("neither .npy nor readable safetensors: ", map.status().message()));
  if (map->size() == 1) return map->begin()->second;
  auto it = map->find(preferred);
  if (it == map->end()) {
    return Bad(path, absl::StrCat("holds ", map->size(), " tensors and none named '", preferred, "'"));
  }
  return it->second;
}

}  // namespace loupe::dark_matter
