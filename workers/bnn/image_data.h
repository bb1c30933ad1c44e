// Image classification data: IDX (MNIST's format, optionally gzip'd) and
// NumPy .npy files, and Debian's dataset-fashion-mnist.
//
// Stateless functions; the returned tensors are independent CPU tensors.
#ifndef LOUPE_WORKERS_BNN_IMAGE_DATA_H_
#define LOUPE_WORKERS_BNN_IMAGE_DATA_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace loupe::bnn {

// Where Debian's dataset-fashion-mnist package puts its IDX files.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

struct ImageSet {
  torch::Tensor images;  // float [N, C, H, W]; uint8 sources scaled to [0, 1]
  torch::Tensor labels;  // int64 [N]
};

struct ImageData {
  ImageSet train, test;
  int64_t num_classes = 0;  // 1 + the largest label
};

// A tensor from an IDX file (gzip'd or not): uint8 data as uint8, other IDX
// types as their own dtype. INVALID_ARGUMENT names the file on a bad header
// or a size that does not match it.
absl::StatusOr<torch::Tensor> ReadIdx(const std::string& path);
// A tensor from a .npy file (C order; u1, i1, i2, i4, i8, f4, f8, little-endian).
absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path);
// ReadNpy for names ending in .npy, ReadIdx otherwise.
absl::StatusOr<torch::Tensor> ReadArray(const std::string& path);

// Images [N, H, W] (one channel) or [N, C, H, W] and labels [N] into a set;
// `what` names the parameter in errors.
absl::StatusOr<ImageSet> MakeImageSet(const torch::Tensor& images, const torch::Tensor& labels,
                                      const std::string& what);

// The four files in `dir` named as MNIST/Fashion-MNIST name them
// (train-images-idx3-ubyte[.gz], …). NOT_FOUND says which package provides
// them when the directory is missing.
absl::StatusOr<ImageData> LoadMnistStyleDir(const std::string& dir);
absl::StatusOr<ImageData> LoadImageData(const std::string& train_images, const std::string& train_labels,
                                        const std::string& test_images, const std::string& test_labels);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_IMAGE_DATA_H_
