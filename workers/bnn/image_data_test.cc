#include "workers/bnn/image_data.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

namespace loupe::bnn {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("bnn-data-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

std::string IdxBytes(uint8_t type, const std::vector<int32_t>& dims, const std::string& payload) {
  std::string b = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (int32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  }
  return b + payload;
}

void WriteFile(const std::string& path, const std::string& bytes, bool gz = false) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), bytes.size());
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

TEST(ImageDataTest, ReadsIdxPlainAndGzipped) {
  std::string pixels;
  for (int i = 0; i < 2 * 3 * 4; ++i) pixels.push_back(static_cast<char>(i * 10));
  for (bool gz : {false, true}) {
    const std::string path = TempPath(gz ? "a.idx.gz" : "a.idx");
    WriteFile(path, IdxBytes(0x08, {2, 3, 4}, pixels), gz);
    absl::StatusOr<torch::Tensor> t = ReadIdx(path);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->sizes(), (std::vector<int64_t>{2, 3, 4}));
    EXPECT_EQ(t->scalar_type(), torch::kUInt8);
    EXPECT_EQ(t->flatten()[23].item<int>(), 230);
    std::filesystem::remove(path);
  }
}

TEST(ImageDataTest, ReadsBigEndianIdxInts) {
  const std::string path = TempPath("i.idx");
  WriteFile(path, IdxBytes(0x0C, {2}, std::string("\x00\x00\x01\x02\xff\xff\xff\xfe", 8)));
  absl::StatusOr<torch::Tensor> t = ReadIdx(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->scalar_type(), torch::kInt);
  EXPECT_EQ((*t)[0].item<int>(), 258);
  EXPECT_EQ((*t)[1].item<int>(), -2);
  std::filesystem::remove(path);
}

TEST(ImageDataTest, RejectsTruncatedIdxNamingTheFile) {
  const std::string path = TempPath("short.idx");
  WriteFile(path, IdxBytes(0x08, {10, 28, 28}, "abc"));
  absl::StatusOr<torch::Tensor> t = ReadIdx(path);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(path), std::string::npos);
  EXPECT_EQ(ReadIdx(TempPath("missing")).status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(path);
}

TEST(ImageDataTest, ReadsNpy) {
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
  header.resize(128 - 10 - 1, ' ');
  header += '\n';
  std::string b = std::string("\x93NUMPY\x01\x00", 8);
  b.push_back(static_cast<char>(header.size() & 0xff));
  b.push_back(static_cast<char>(header.size() >> 8));
  b += header;
  const int64_t values[3] = {4, -1, 7};
  b.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string path = TempPath("l.npy");
  WriteFile(path, b);
  absl::StatusOr<torch::Tensor> t = ReadArray(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(torch::equal(*t, torch::tensor({4, -1, 7}, torch::kLong)));
  std::filesystem::remove(path);
}

TEST(ImageDataTest, MakeImageSetScalesAndChecks) {
  absl::StatusOr<ImageSet> s =
      MakeImageSet(torch::full({2, 4, 4}, 255, torch::kUInt8), torch::tensor({0, 1}, torch::kUInt8), "train data");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->images.sizes(), (std::vector<int64_t>{2, 1, 4, 4}));
  EXPECT_FLOAT_EQ(s->images.max().item<float>(), 1.0f);
  EXPECT_EQ(s->labels.scalar_type(), torch::kLong);
  absl::StatusOr<ImageSet> bad = MakeImageSet(torch::zeros({3, 4, 4}), torch::zeros({2}, torch::kLong), "test data");
  EXPECT_NE(bad.status().message().find("3 images but 2 labels"), std::string::npos);
  EXPECT_FALSE(MakeImageSet(torch::zeros({3, 4, 5}), torch::zeros({3}, torch::kLong), "x").ok());
}

TEST(ImageDataTest, MissingDirectoryNamesThePackage) {
  absl::StatusOr<ImageData> d = LoadMnistStyleDir("/nonexistent/fashion");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("dataset-fashion-mnist"), std::string::npos);
}

TEST(ImageDataTest, ReadsDebianFashionMnistWhenInstalled) {
  if (!std::filesystem::exists(kFashionMnistDir)) GTEST_SKIP() << kFashionMnistDir << " absent";
  absl::StatusOr<ImageData> d = LoadMnistStyleDir(kFashionMnistDir);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->train.images.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(d->test.images.size(0), 10000);
  EXPECT_EQ(d->num_classes, 10);
}

}  // namespace
}  // namespace loupe::bnn
