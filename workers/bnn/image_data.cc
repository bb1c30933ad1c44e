#include "workers/bnn/image_data.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <regex>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loupe::bnn {
namespace {

// The whole file, decompressed if it is gzip'd (zlib reads plain files as is).
absl::StatusOr<std::string> ReadMaybeGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  const bool failed = n < 0;
  gzclose(f);
  if (failed) return absl::DataLossError(absl::StrCat(path, ": read error (corrupt gzip?)"));
  return out;
}

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

}  // namespace

absl::StatusOr<torch::Tensor> ReadIdx(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadMaybeGz(path);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = *bytes;
  if (b.size() < 4 || b[0] != 0 || b[1] != 0) return Bad(path, "not an IDX file (bad magic number)");
  const uint8_t type = static_cast<uint8_t>(b[2]);
  const int dims = static_cast<uint8_t>(b[3]);
  c10::ScalarType dtype;
  int64_t elem;
  switch (type) {
    case 0x08: dtype = torch::kUInt8, elem = 1; break;
    case 0x09: dtype = torch::kInt8, elem = 1; break;
    case 0x0B: dtype = torch::kInt16, elem = 2; break;
    case 0x0C: dtype = torch::kInt32, elem = 4; break;
    case 0x0D: dtype = torch::kFloat, elem = 4; break;
    case 0x0E: dtype = torch::kDouble, elem = 8; break;
    default: return Bad(path, absl::StrCat("unknown IDX element type 0x", absl::Hex(type)));
  }
  if (dims < 1 || b.size() < 4 + 4 * static_cast<size_t>(dims)) return Bad(path, "truncated IDX header");
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (int d = 0; d < dims; ++d) {
    const auto* p = reinterpret_cast<const uint8_t*>(b.data() + 4 + 4 * d);
    const int64_t v = (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) | p[3];
    shape.push_back(v);
    count *= v;
  }
  const size_t offset = 4 + 4 * dims;
  if (b.size() != offset + count * elem) {
    return Bad(path, absl::StrCat("IDX header promises ", count, " elements but the file holds ",
                                  (b.size() - offset) / elem));
  }
  torch::Tensor t = torch::empty(shape, dtype);
  std::memcpy(t.data_ptr(), b.data() + offset, count * elem);
  if (elem > 1) {  // IDX is big-endian
    auto* raw = static_cast<uint8_t*>(t.data_ptr());
    for (int64_t i = 0; i < count; ++i) std::reverse(raw + i * elem, raw + (i + 1) * elem);
  }
  return t;
}

absl::StatusOr<torch::Tensor> ReadNpy(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadMaybeGz(path);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = *bytes;
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) return Bad(path, "not a .npy file");
  const int major = static_cast<uint8_t>(b[6]);
  size_t header_len, start;
  if (major == 1) {
    header_len = static_cast<uint8_t>(b[8]) | (static_cast<uint8_t>(b[9]) << 8);
    start = 10;
  } else {
    if (b.size() < 12) return Bad(path, "truncated .npy header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(b[8 + i]);
    start = 12;
  }
  if (b.size() < start + header_len) return Bad(path, "truncated .npy header");
  const std::string header = b.substr(start, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")))
    return Bad(path, "no descr in .npy header");
  const std::string descr = m[1];
  if (std::regex_search(header, std::regex("'fortran_order'\\s*:\\s*True")))
    return Bad(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray");
  if (!std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    return Bad(path, "no shape in .npy header");
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (absl::string_view part : absl::StrSplit(std::string(m[1]), ',', absl::SkipWhitespace())) {
    int64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &v)) return Bad(path, "bad shape in .npy header");
    shape.push_back(v);
    count *= v;
  }
  struct Type {
    const char* descr;
    c10::ScalarType dtype;
    int64_t size;
  };
  static const Type kTypes[] = {{"|u1", torch::kUInt8, 1}, {"|i1", torch::kInt8, 1},  {"<i2", torch::kInt16, 2},
                                {"<i4", torch::kInt32, 4}, {"<i8", torch::kLong, 8},   {"<f4", torch::kFloat, 4},
                                {"<f8", torch::kDouble, 8}, {"|b1", torch::kBool, 1}};
  const Type* type = nullptr;
  for (const Type& t : kTypes) {
    if (descr == t.descr) type = &t;
  }
  if (type == nullptr) return Bad(path, absl::StrCat("unsupported .npy dtype '", descr, "'"));
  const size_t offset = start + header_len;
  if (b.size() != offset + count * type->size) {
    return Bad(path, absl::StrCat(".npy header promises ", count, " elements, the file holds ",
                                  (b.size() - offset) / type->size));
  }
  torch::Tensor t = torch::empty(shape, type->dtype);
  std::memcpy(t.data_ptr(), b.data() + offset, count * type->size);
  return t;
}

absl::StatusOr<torch::Tensor> ReadArray(const std::string& path) {
  if (absl::EndsWith(path, ".npy") || absl::EndsWith(path, ".npy.gz")) return ReadNpy(path);
  return ReadIdx(path);
}

absl::StatusOr<ImageSet> MakeImageSet(const torch::Tensor& images, const torch::Tensor& labels,
                                      const std::string& what) {
  auto bad = [&](absl::string_view m) { return absl::InvalidArgumentError(absl::StrCat(what, ": ", m)); };
  if (images.dim() != 3 && images.dim() != 4) return bad("images must be [N, H, W] or [N, C, H, W]");
  if (labels.dim() != 1) return bad("labels must be one-dimensional");
  if (labels.size(0) != images.size(0)) {
    return bad(absl::StrCat(images.size(0), " images but ", labels.size(0), " labels"));
  }
  if (images.size(0) == 0) return bad("no images");
  if (labels.is_floating_point()) return bad("labels must be integers");
  ImageSet s;
  torch::Tensor x = images.dim() == 3 ? images.unsqueeze(1) : images;
  if (x.size(2) != x.size(3)) return bad(absl::StrCat("images must be square, got ", x.size(2), "×", x.size(3)));
  s.images = x.scalar_type() == torch::kUInt8 ? x.to(torch::kFloat) / 255.0 : x.to(torch::kFloat);
  s.images = s.images.contiguous();
  s.labels = labels.to(torch::kLong).contiguous();
  if (s.labels.min().item<int64_t>() < 0) return bad("labels must be ≥ 0");
  return s;
}

absl::StatusOr<ImageData> LoadImageData(const std::string& train_images, const std::string& train_labels,
                                        const std::string& test_images, const std::string& test_labels) {
  ImageData d;
  for (bool train : {true, false}) {
    const std::string& xi = train ? train_images : test_images;
    const std::string& yi = train ? train_labels : test_labels;
    absl::StatusOr<torch::Tensor> x = ReadArray(xi);
    if (!x.ok()) return x.status();
    absl::StatusOr<torch::Tensor> y = ReadArray(yi);
    if (!y.ok()) return y.status();
    absl::StatusOr<ImageSet> s = MakeImageSet(*x, *y, train ? "train data" : "test data");
    if (!s.ok()) return s.status();
    (train ? d.train : d.test) = std::move(*s);
  }
  if (d.train.images.sizes().slice(1) != d.test.images.sizes().slice(1)) {
    return absl::InvalidArgumentError("train and test images differ in shape");
  }
  d.num_classes = 1 + std::max(d.train.labels.max().item<int64_t>(), d.test.labels.max().item<int64_t>());
  if (d.num_classes < 2) return absl::InvalidArgumentError("labels: need at least two classes");
  return d;
}

absl::StatusOr<ImageData> LoadMnistStyleDir(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, " not found: install Debian's dataset-fashion-mnist package "
                                                 "(deploy/install-deps.sh) or pass train_images, train_labels, "
                                                 "test_images and test_labels"));
  }
  auto file = [&](const std::string& stem) {
    const std::string plain = (std::filesystem::path(dir) / stem).string();
    return std::filesystem::exists(plain) ? plain : plain + ".gz";
  };
  return LoadImageData(file("train-images-idx3-ubyte"), file("train-labels-idx1-ubyte"),
                       file("t10k-images-idx3-ubyte"), file("t10k-labels-idx1-ubyte"));
}

}  // namespace loupe::bnn
