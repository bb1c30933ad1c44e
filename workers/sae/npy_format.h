// NumPy's .npy and .npz containers, read without NumPy: enough to take
// activation matrices ([n, d] float arrays) and Gemma Scope's params.npz.
//
// .npy: magic "\x93NUMPY", version, a little-endian header length, then a
// Python-literal dict {'descr': '<f4', 'fortran_order': False, 'shape': (n, d)}
// and the raw C-order data. Supported dtypes: '<f4', '<f2', '<f8', '<i8',
// '<i4' (NumPy has no bfloat16; use safetensors for BF16 activations).
// .npz: a zip archive of NAME.npy members, stored or deflated (np.savez /
// np.savez_compressed); zip64 is not supported (members over 4 GiB).
//
// NpyArray views bytes it does not own: a mapped file (MappedNpy) or a
// decompressed buffer held by its NpzArchive. Functions are stateless and
// thread-safe; the mapped objects are immutable after opening.
#ifndef LOUPE_WORKERS_SAE_NPY_FORMAT_H_
#define LOUPE_WORKERS_SAE_NPY_FORMAT_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loupe::sae {

struct NpyHeader {
  torch::ScalarType dtype = torch::kFloat;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // bytes from the start of the .npy bytes
};

// Parses the header of .npy bytes (`name` only for errors). Fortran order and
// big-endian data are refused.
absl::StatusOr<NpyHeader> ParseNpyHeader(absl::string_view bytes, absl::string_view name);

// A .npy file memory-mapped read-only; Rows() copies a row range out.
class MappedNpy {
 public:
  static absl::StatusOr<std::unique_ptr<MappedNpy>> Open(const std::string& path);
  MappedNpy(const MappedNpy&) = delete;
  MappedNpy& operator=(const MappedNpy&) = delete;
  ~MappedNpy();
  const NpyHeader& header() const { return header_; }
  // Raw bytes of the data section.
  const char* data() const { return base_ + header_.data_offset; }

 private:
  MappedNpy() = default;
  NpyHeader header_;
  void* mapping_ = nullptr;
  size_t size_ = 0;
  const char* base_ = nullptr;
};

// Every array of a .npz, copied into tensors (CPU, the file's dtype).
absl::StatusOr<std::map<std::string, torch::Tensor>> ReadNpz(const std::string& path);

// The bytes of a .npy for `t` (CPU; float32/float16/float64/int64/int32).
std::string NpyBytes(const torch::Tensor& t);

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_NPY_FORMAT_H_
