// ActivationStream: rows of activations [n, d_model] for training or scoring
// an SAE, whatever produces them. Implementations here:
//   FileActivationStream  a [n, d_model] matrix in a safetensors file (F32,
//                         F16, BF16) or a .npy (f4, f2, f8), memory-mapped:
//                         rows are copied out one chunk (<= 64 MiB as float32)
//                         at a time, so files larger than memory stream.
// (Synthetic and language-model streams live in sae_sources.h.)
//
// Not thread-safe; one consumer.
#ifndef LOUPE_WORKERS_SAE_ACTIVATION_STREAM_H_
#define LOUPE_WORKERS_SAE_ACTIVATION_STREAM_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/common/safetensors.h"
#include "workers/sae/npy_format.h"

namespace loupe::sae {

class ActivationStream {
 public:
  virtual ~ActivationStream() = default;
  // The next n >= 1 rows, float32 on the stream's device.
  virtual absl::StatusOr<torch::Tensor> Next(int64_t n) = 0;
  virtual int64_t d_model() const = 0;
  // Where the stream is, as tensors (for checkpoints), and back. Streams
  // that cannot resume exactly return {} and accept anything.
  virtual std::map<std::string, torch::Tensor> Position() const { return {}; }
  virtual absl::Status Restore(const std::map<std::string, torch::Tensor>& position) {
    (void)position;
    return absl::OkStatus();
  }
};

// A memory-mapped activation matrix.
class ActivationMatrixFile {
 public:
  // `tensor` picks a safetensors entry; empty: the file's only tensor. Files
  // ending in ".npy" are NumPy arrays. INVALID_ARGUMENT names the problem
  // (not 2-D, unsupported dtype, several tensors and none named).
  static absl::StatusOr<std::shared_ptr<const ActivationMatrixFile>> Open(const std::string& path,
                                                                          const std::string& tensor);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Rows [begin, end) as float32 (a copy), on the CPU.
  torch::Tensor Rows(int64_t begin, int64_t end) const;

 private:
  std::shared_ptr<const safetensors::File> safetensors_;
  std::unique_ptr<MappedNpy> npy_;
  const char* data_ = nullptr;
  torch::ScalarType dtype_ = torch::kFloat;
  int64_t rows_ = 0, cols_ = 0;
};

// Rows [begin, end) of a matrix. shuffle: chunks are visited in a random
// order each epoch and each chunk's rows permuted (a chunk-local shuffle; the
// order is a pure function of seed, epoch and chunk, so a position is just
// the number of rows handed out). Without shuffle: in file order. Cycles.
class FileActivationStream : public ActivationStream {
 public:
  FileActivationStream(std::shared_ptr<const ActivationMatrixFile> file, int64_t begin, int64_t end, bool shuffle,
                       uint64_t seed, torch::Device device, int64_t chunk_rows = 0);
  absl::StatusOr<torch::Tensor> Next(int64_t n) override;
  int64_t d_model() const override { return file_->cols(); }
  std::map<std::string, torch::Tensor> Position() const override;
  absl::Status Restore(const std::map<std::string, torch::Tensor>& position) override;
  int64_t rows_served() const { return served_; }

 private:
  // Loads the chunk holding overall position `served_`.
  void LoadChunkAt(int64_t position);
  std::vector<int64_t> ChunkOrder(int64_t epoch) const;

  std::shared_ptr<const ActivationMatrixFile> file_;
  int64_t begin_, end_;
  bool shuffle_;
  uint64_t seed_;
  torch::Device device_;
  int64_t chunk_rows_;
  int64_t served_ = 0;
  int64_t loaded_epoch_ = -1, loaded_slot_ = -1;
  torch::Tensor chunk_;  // rows of the loaded chunk, already permuted
};

}  // namespace loupe::sae

#endif  // LOUPE_WORKERS_SAE_ACTIVATION_STREAM_H_
