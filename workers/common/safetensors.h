// safetensors: reads and writes the safetensors tensor-file format
// (https://github.com/huggingface/safetensors), the one implementation used
// across Loupe. This layer is LibTorch-free; safetensors_torch.h converts to
// and from torch::Tensor.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// then the data section: each tensor's row-major little-endian bytes at
// [begin, end) relative to the end of the header.
//
// Reading validates the header length bounds, the JSON, dtypes, shape × dtype
// size == byte range, offsets inside the data section and tensors tiling it
// with neither overlap nor gap (as the reference implementation does), plus
// duplicate names, and reports a bad file as INVALID_ARGUMENT naming the file, the
// tensor and the problem; a missing file is NOT_FOUND, other I/O errors
// INTERNAL.
//
// Writing lays tensors out by element size (largest first), then by name, and
// pads the header with spaces to a multiple of 8 bytes, as the reference writer
// does, so every tensor starts aligned to its element size.
//
// Thread safety: a File is immutable once opened; share it freely (it is
// handed out as shared_ptr<const File>). Views returned by File stay valid for
// as long as the File lives.
#ifndef LOUPE_WORKERS_COMMON_SAFETENSORS_H_
#define LOUPE_WORKERS_COMMON_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loupe::safetensors {

// Every dtype of the format (fp8 included; the F4/F6 micro-formats are not
// byte-addressable and are refused).
enum class DType {
  kBool, kU8, kI8, kU16, kI16, kU32, kI32, kU64, kI64,
  kF8E4M3, kF8E5M2, kF16, kBF16, kF32, kF64,
};

// "F32", "BF16", ... as written in headers.
absl::string_view DTypeName(DType dtype);
std::optional<DType> DTypeFromName(absl::string_view name);
// Bytes per element.
size_t DTypeSize(DType dtype);

using Metadata = std::map<std::string, std::string>;

// One tensor as described by a file's header.
struct TensorInfo {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// One tensor to write. `bytes` is borrowed: it must stay alive until the call
// that takes it returns, and hold numel(shape) * DTypeSize(dtype) bytes.
struct TensorData {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::string_view bytes;
};
using TensorDataMap = std::map<std::string, TensorData>;

// The whole file as one string (small files; artifacts written from memory).
absl::StatusOr<std::string> Serialize(const TensorDataMap& tensors,
                                      const Metadata& metadata = {});
// Streams the file to `path` (via a temporary file renamed into place, so a
// reader never sees a half-written file).
absl::Status WriteFile(const std::string& path, const TensorDataMap& tensors,
                       const Metadata& metadata = {});

// A validated safetensors file, memory-mapped (Open) or held in memory
// (FromBytes).
class File {
 public:
  static absl::StatusOr<std::shared_ptr<const File>> Open(const std::string& path);
  // `name` only appears in error messages.
  static absl::StatusOr<std::shared_ptr<const File>> FromBytes(
      std::string bytes, std::string name = "<memory>");

  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& name() const { return name_; }
  const Metadata& metadata() const { return metadata_; }
  // Tensor names, sorted.
  std::vector<std::string> names() const;
  const std::map<std::string, TensorInfo, std::less<>>& tensors() const { return tensors_; }
  // nullptr if absent.
  const TensorInfo* Find(absl::string_view name) const;
  // The tensor's bytes inside the mapping; NOT_FOUND if absent.
  absl::StatusOr<absl::string_view> Bytes(absl::string_view name) const;

 private:
  File() = default;
  absl::Status Parse();

  std::string name_;
  std::string owned_;             // FromBytes
  void* mapping_ = nullptr;       // Open: mmap'ed region
  size_t mapping_size_ = 0;
  const char* bytes_ = nullptr;   // the whole file
  size_t size_ = 0;
  size_t data_start_ = 0;         // 8 + header length
  Metadata metadata_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
};

// Largest header the reader accepts (the reference implementation's limit).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

}  // namespace loupe::safetensors

#endif  // LOUPE_WORKERS_COMMON_SAFETENSORS_H_
