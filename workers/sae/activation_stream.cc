#include "workers/sae/activation_stream.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace loupe::sae {
namespace {

constexpr int64_t kChunkBytes = int64_t{64} << 20;

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ActivationMatrixFile>> ActivationMatrixFile::Open(const std::string& path,
                                                                                       const std::string& tensor) {
  auto out = std::make_shared<ActivationMatrixFile>();
  std::vector<int64_t> shape;
  if (absl::EndsWith(path, ".npy")) {
    absl::StatusOr<std::unique_ptr<MappedNpy>> npy = MappedNpy::Open(path);
    if (!npy.ok()) return npy.status();
    out->npy_ = *std::move(npy);
    shape = out->npy_->header().shape;
    out->dtype_ = out->npy_->header().dtype;
    out->data_ = out->npy_->data();
    if (out->dtype_ != torch::kFloat && out->dtype_ != torch::kHalf && out->dtype_ != torch::kDouble) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": activations must be a float array (<f4, <f2, <f8)"));
    }
  } else {
    absl::StatusOr<std::shared_ptr<const safetensors::File>> f = safetensors::File::Open(path);
    if (!f.ok()) return f.status();
    out->safetensors_ = *f;
    std::string name = tensor;
    if (name.empty()) {
      if ((*f)->tensors().size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(path, " holds ", (*f)->tensors().size(),
                                                       " tensors; name the activations with tensor="));
      }
      name = (*f)->tensors().begin()->first;
    }
    const safetensors::TensorInfo* info = (*f)->Find(name);
    if (info == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, " has no tensor '", name, "'"));
    switch (info->dtype) {
      case safetensors::DType::kF32: out->dtype_ = torch::kFloat; break;
      case safetensors::DType::kF16: out->dtype_ = torch::kHalf; break;
      case safetensors::DType::kBF16: out->dtype_ = torch::kBFloat16; break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' is ",
                                                       safetensors::DTypeName(info->dtype),
                                                       "; activations must be F32, F16 or BF16"));
    }
    shape = info->shape;
    absl::StatusOr<absl::string_view> bytes = (*f)->Bytes(name);
    if (!bytes.ok()) return bytes.status();
    out->data_ = bytes->data();
  }
  if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1) {
    std::string s;
    for (int64_t v : shape) absl::StrAppend(&s, s.empty() ? "" : ", ", v);
    return absl::InvalidArgumentError(absl::StrCat(path, ": activations must be a non-empty [n, d_model] matrix, got [",
                                                   s, "]"));
  }
  out->rows_ = shape[0];
  out->cols_ = shape[1];
  return std::shared_ptr<const ActivationMatrixFile>(out);
}

torch::Tensor ActivationMatrixFile::Rows(int64_t begin, int64_t end) const {
  const size_t row_bytes = static_cast<size_t>(cols_) * c10::elementSize(dtype_);
  void* start = const_cast<char*>(data_ + static_cast<size_t>(begin) * row_bytes);
  return torch::from_blob(start, {end - begin, cols_}, torch::TensorOptions().dtype(dtype_))
      .to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

FileActivationStream::FileActivationStream(std::shared_ptr<const ActivationMatrixFile> file, int64_t begin,
                                           int64_t end, bool shuffle, uint64_t seed, torch::Device device,
                                           int64_t chunk_rows)
    : file_(std::move(file)), begin_(begin), end_(end), shuffle_(shuffle), seed_(seed), device_(device) {
  chunk_rows_ = chunk_rows > 0 ? chunk_rows : std::max<int64_t>(1, kChunkBytes / (4 * file_->cols()));
  chunk_rows_ = std::min(chunk_rows_, end_ - begin_);
}

std::vector<int64_t> FileActivationStream::ChunkOrder(int64_t epoch) const {
  const int64_t n_chunks = (end_ - begin_ + chunk_rows_ - 1) / chunk_rows_;
  std::vector<int64_t> order(n_chunks);
  for (int64_t i = 0; i < n_chunks; ++i) order[i] = i;
  if (shuffle_) {
    std::mt19937_64 rng(Mix(seed_, static_cast<uint64_t>(epoch)));
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

void FileActivationStream::LoadChunkAt(int64_t position) {
  const int64_t total = end_ - begin_;
  const int64_t epoch = position / total;
  const int64_t within = position % total;
  // Chunks have chunk_rows_ rows except the last; positions count rows in
  // visiting order, so find the slot by walking the order.
  std::vector<int64_t> order = ChunkOrder(epoch);
  int64_t acc = 0;
  for (int64_t slot = 0; slot < static_cast<int64_t>(order.size()); ++slot) {
    const int64_t c = order[slot];
    const int64_t rows = std::min(chunk_rows_, total - c * chunk_rows_);
    if (within < acc + rows) {
      if (epoch != loaded_epoch_ || slot != loaded_slot_) {
        torch::Tensor t = file_->Rows(begin_ + c * chunk_rows_, begin_ + c * chunk_rows_ + rows);
        if (shuffle_) {
          at::Generator g = at::make_generator<at::CPUGeneratorImpl>(Mix(Mix(seed_, epoch), c + 1));
          t = t.index_select(0, torch::randperm(rows, g, torch::TensorOptions().dtype(torch::kLong)));
        }
        chunk_ = t.to(device_);
        loaded_epoch_ = epoch;
        loaded_slot_ = slot;
      }
      return;
    }
    acc += rows;
  }
}

absl::StatusOr<torch::Tensor> FileActivationStream::Next(int64_t n) {
  const int64_t total = end_ - begin_;
  std::vector<torch::Tensor> parts;
  int64_t need = n;
  while (need > 0) {
    LoadChunkAt(served_);
    // Offset of served_ inside the loaded chunk.
    const int64_t within = served_ % total;
    std::vector<int64_t> order = ChunkOrder(served_ / total);
    int64_t chunk_start = 0;
    for (int64_t slot = 0; slot < loaded_slot_; ++slot) {
      chunk_start += std::min(chunk_rows_, total - order[slot] * chunk_rows_);
    }
    const int64_t offset = within - chunk_start;
    const int64_t take = std::min(need, chunk_.size(0) - offset);
    parts.push_back(chunk_.slice(0, offset, offset + take));
    served_ += take;
    need -= take;
  }
  return parts.size() == 1 ? parts[0].clone() : torch::cat(parts);
}

std::map<std::string, torch::Tensor> FileActivationStream::Position() const {
  return {{"file.rows_served", torch::full({1}, served_, torch::kLong)}};
}

absl::Status FileActivationStream::Restore(const std::map<std::string, torch::Tensor>& position) {
  auto it = position.find("file.rows_served");
  if (it == position.end()) return absl::InvalidArgumentError("checkpoint lacks the file position");
  served_ = it->second.item<int64_t>();
  return absl::OkStatus();
}

}  // namespace loupe::sae
