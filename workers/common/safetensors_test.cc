#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/common/safetensors.h"
#include "workers/common/safetensors_torch.h"

namespace loupe::safetensors {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Written by testdata/make_safetensors_fixture.py (json + struct + numpy only).
std::string FixturePath() {
  return (std::filesystem::path(__FILE__).parent_path() / "testdata" / "fixture.safetensors").string();
}

std::filesystem::path TempDir() {
  return std::filesystem::temp_directory_path() / ("loupe-safetensors-test-" + std::to_string(::getpid()));
}

std::string TempPath(const std::string& leaf) {
  std::filesystem::create_directories(TempDir());
  return (TempDir() / leaf).string();
}

// Removes the files the tests wrote once they have all run.
class TempDirCleanup : public ::testing::Environment {
 public:
  void TearDown() override { std::filesystem::remove_all(TempDir()); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempDirCleanup);

// A file from a header given as JSON text plus a data section.
std::string MakeBytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

absl::Status ParseStatus(std::string bytes) {
  return File::FromBytes(std::move(bytes), "bad.safetensors").status();
}

TEST(SafetensorsFixture, MatchesIndependentPythonWriter) {
  absl::StatusOr<std::shared_ptr<const File>> f = File::Open(FixturePath());
  ASSERT_TRUE(f.ok()) << f.status();
  const File& file = **f;
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("writer"), "make_safetensors_fixture.py");
  EXPECT_THAT(file.names(), ElementsAre("bf16", "bool", "empty", "f16", "f32", "f64", "i32", "i64",
                                        "scalar", "u8"));

  for (LoadMode mode : {LoadMode::kCopy, LoadMode::kShare}) {
    SCOPED_TRACE(mode == LoadMode::kCopy ? "copy" : "share");
    auto get = [&](const char* name) {
      absl::StatusOr<torch::Tensor> t = LoadTensor(*f, name, mode);
      EXPECT_TRUE(t.ok()) << t.status();
      return t.ok() ? *t : torch::Tensor();
    };
    torch::Tensor u8 = get("u8");
    EXPECT_EQ(u8.scalar_type(), torch::kByte);
    EXPECT_TRUE(torch::equal(u8, torch::tensor({0, 1, 127, 128, 255}, torch::kByte)));

    torch::Tensor f32 = get("f32");
    EXPECT_EQ(f32.sizes(), (std::vector<int64_t>{2, 3}));
    EXPECT_TRUE(torch::equal(f32, (torch::arange(6, torch::kFloat) * 0.5 - 1.25).reshape({2, 3})));

    torch::Tensor f16 = get("f16");
    EXPECT_EQ(f16.scalar_type(), torch::kHalf);
    EXPECT_TRUE(torch::equal(f16.to(torch::kFloat),
                             torch::tensor({0.5f, -2.0f, 65504.0f, std::ldexp(1.0f, -14)})));

    torch::Tensor bf16 = get("bf16");
    EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(bf16.to(torch::kFloat), torch::tensor({1.0f, -0.15625f, 256.0f})));

    torch::Tensor i64 = get("i64");  // at an unaligned offset: always copied
    EXPECT_EQ(i64.scalar_type(), torch::kLong);
    EXPECT_EQ(i64[0][0].item<int64_t>(), -(int64_t{1} << 40));
    EXPECT_EQ(i64[0][1].item<int64_t>(), 1);
    EXPECT_EQ(i64[1][0].item<int64_t>(), 2);
    EXPECT_EQ(i64[1][1].item<int64_t>(), int64_t{1} << 62);

    EXPECT_TRUE(torch::equal(get("i32"), torch::tensor({-7, 0, 2147483647}, torch::kInt)));
    EXPECT_TRUE(torch::equal(get("bool"), torch::tensor({true, false, false, true}).reshape({2, 2})));
    EXPECT_EQ(get("f64").item<double>(), M_PI);
    torch::Tensor scalar = get("scalar");
    EXPECT_EQ(scalar.dim(), 0);
    EXPECT_EQ(scalar.item<float>(), 42.5f);
    torch::Tensor empty = get("empty");
    EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 3}));
  }
}

TEST(SafetensorsTorch, RoundTripsEveryDtypeWithAlignedLayout) {
  torch::manual_seed(1);
  TensorMap in = {
      {"w_f32", torch::randn({3, 5})},
      {"w_f16", torch::randn({7}).to(torch::kHalf)},
      {"w_bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"w_f64", torch::randn({4}, torch::kDouble)},
      {"ids", torch::arange(-3, 6, torch::kLong)},
      {"i32", torch::tensor({1, -2, 3}, torch::kInt)},
      {"i16", torch::tensor({-300, 300}, torch::kShort)},
      {"i8", torch::tensor({-1, 1, 2}, torch::kChar)},
      {"u8", torch::tensor({7, 250}, torch::kByte)},
      {"mask", torch::tensor({true, false, true})},
      {"transposed", torch::arange(6, torch::kFloat).reshape({2, 3}).t()},  // non-contiguous
      {"none", torch::zeros({0})},
  };
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(SaveTensors(path, in, {{"format", "pt"}, {"note", "ünïcode"}}).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  absl::StatusOr<std::shared_ptr<const File>> f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("note"), "ünïcode");
  for (const auto& [name, info] : (*f)->tensors()) {
    // Header padded to 8 bytes and largest elements first: every tensor is
    // aligned to its element size, so kShare never needs to copy.
    absl::StatusOr<absl::string_view> bytes = (*f)->Bytes(name);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bytes->data()) % DTypeSize(info.dtype), 0u) << name;
  }
  absl::StatusOr<TensorMap> out = LoadTensors(path);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), in.size());
  for (const auto& [name, t] : in) {
    ASSERT_TRUE(out->count(name)) << name;
    EXPECT_EQ(out->at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(out->at(name), t)) << name;
  }
  // Serialize() produces the same bytes as the file.
  absl::StatusOr<std::string> bytes = SerializeTensors(in, {{"format", "pt"}, {"note", "ünïcode"}});
  ASSERT_TRUE(bytes.ok());
  std::ifstream file(path, std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*bytes, on_disk);
}

TEST(SafetensorsTorch, SharedTensorKeepsMappingAlive) {
  const std::string path = TempPath("shared.safetensors");
  ASSERT_TRUE(SaveTensors(path, {{"x", torch::arange(1000, torch::kFloat)}}).ok());
  torch::Tensor x;
  {
    absl::StatusOr<std::shared_ptr<const File>> f = File::Open(path);
    ASSERT_TRUE(f.ok());
    absl::StatusOr<torch::Tensor> t = LoadTensor(*f, "x", LoadMode::kShare);
    ASSERT_TRUE(t.ok());
    absl::StatusOr<absl::string_view> bytes = (*f)->Bytes("x");
    EXPECT_EQ(t->data_ptr(), static_cast<const void*>(bytes->data()));  // no copy
    x = t->slice(0, 10, 20);  // a view outliving both the File and the tensor
  }
  std::filesystem::remove(path);  // the mapping survives unlinking, too
  EXPECT_TRUE(torch::equal(x, torch::arange(10, 20, torch::kFloat)));
  x.mul_(2);  // private copy-on-write pages: allowed, never reaches a file
  EXPECT_EQ(x[0].item<float>(), 20.0f);
}

TEST(SafetensorsRaw, WritesWithoutTorchAndKeepsUnsupportedDtypes) {
  const uint16_t u16[3] = {1, 2, 65535};
  const char fp8[2] = {0x38, 0x40};
  TensorDataMap in = {
      {"u16", {DType::kU16, {3}, absl::string_view(reinterpret_cast<const char*>(u16), sizeof u16)}},
      {"fp8", {DType::kF8E4M3, {2}, absl::string_view(fp8, 2)}},
  };
  absl::StatusOr<std::string> bytes = Serialize(in);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  uint64_t n;
  std::memcpy(&n, bytes->data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(nlohmann::json::parse(bytes->substr(8, n)).count("__metadata__"), 0u);

  absl::StatusOr<std::shared_ptr<const File>> f = File::FromBytes(*bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->Find("u16")->dtype, DType::kU16);
  EXPECT_EQ(*(*f)->Bytes("u16"), in["u16"].bytes);
  EXPECT_EQ(*(*f)->Bytes("fp8"), in["fp8"].bytes);
  // LibTorch 1.13 has no uint16: a clear error naming the tensor.
  absl::StatusOr<torch::Tensor> t = LoadTensor(*f, "u16");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(t.status().message(), HasSubstr("tensor 'u16'"));
  EXPECT_EQ(LoadTensor(*f, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsWriter, RefusesBadInput) {
  const char four[4] = {};
  absl::Status s = Serialize({{"x", {DType::kF32, {2}, absl::string_view(four, 4)}}}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'x': shape [2] of F32 needs 8 bytes but 4 were given"));
  s = Serialize({{"__metadata__", {DType::kU8, {4}, absl::string_view(four, 4)}}}).status();
  EXPECT_THAT(s.message(), HasSubstr("reserved"));
  s = Serialize({{"x", {DType::kU8, {-4}, absl::string_view(four, 4)}}}).status();
  EXPECT_THAT(s.message(), HasSubstr("negative dimension"));
  s = SerializeTensors({{"c", torch::zeros({2}, torch::kComplexFloat)}}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'c'"));
  s = SaveTensors("/nonexistent-dir/x.safetensors", {{"x", torch::zeros({1})}});
  EXPECT_FALSE(s.ok());
}

// One valid file, then one corruption per test.
const char kHeader[] =
    R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("b":{"dtype":"I64","shape":[1],"data_offsets":[24,32]}})";

TEST(SafetensorsReader, AcceptsTheBaseCase) {
  EXPECT_TRUE(ParseStatus(MakeBytes(kHeader, std::string(32, '\0'))).ok());
}

TEST(SafetensorsReader, RefusesTruncatedFiles) {
  std::string good = MakeBytes(kHeader, std::string(32, '\0'));
  absl::Status s = ParseStatus(good.substr(0, good.size() - 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("bad.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b': data_offsets [24, 32] exceed the data section (29 bytes"));
  s = ParseStatus(good.substr(0, 5));
  EXPECT_THAT(s.message(), HasSubstr("too short"));
  s = ParseStatus(good.substr(0, 40));  // cut inside the header
  EXPECT_THAT(s.message(), HasSubstr("exceeds the 32 bytes that follow it"));

  const std::string path = TempPath("truncated.safetensors");
  std::ofstream(path, std::ios::binary) << good.substr(0, good.size() - 1);
  absl::StatusOr<std::shared_ptr<const File>> f = File::Open(path);
  EXPECT_THAT(f.status().message(), HasSubstr(path));
  EXPECT_THAT(f.status().message(), HasSubstr("tensor 'b'"));
  std::ofstream(path, std::ios::binary | std::ios::trunc).flush();  // empty file
  EXPECT_THAT(File::Open(path).status().message(), HasSubstr("file is 0 bytes"));
  EXPECT_EQ(File::Open(TempPath("missing.safetensors")).status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsReader, RefusesHeaderLengthTooBig) {
  std::string bytes = MakeBytes(kHeader, std::string(32, '\0'));
  uint64_t n = 1ull << 40;
  std::memcpy(bytes.data(), &n, 8);
  EXPECT_THAT(ParseStatus(bytes).message(), HasSubstr("header length 1099511627776 exceeds the limit"));
  n = bytes.size();
  std::memcpy(bytes.data(), &n, 8);
  EXPECT_THAT(ParseStatus(bytes).message(), HasSubstr("exceeds the"));
}

TEST(SafetensorsReader, RefusesOffsetsOutOfRangeOverlappingOrWithGaps) {
  auto with = [](const std::string& b_offsets, size_t data_size) {
    return ParseStatus(MakeBytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":)" +
                                     b_offsets + "}}",
                                 std::string(data_size, '\0')));
  };
  EXPECT_THAT(with("[8,16]", 12).message(), HasSubstr("tensor 'b': data_offsets [8, 16] exceed the data section"));
  EXPECT_THAT(with("[4,12]", 12).message(), HasSubstr("tensors 'a' and 'b' overlap"));
  EXPECT_THAT(with("[12,20]", 20).message(), HasSubstr("gap in the data section"));
  EXPECT_THAT(with("[8,16]", 20).message(), HasSubstr("the data section is 20 bytes but its tensors cover 16"));
  EXPECT_THAT(with("[16,8]", 20).message(), HasSubstr("end before they begin"));
  EXPECT_THAT(with("[8]", 16).message(), HasSubstr("tensor 'b': 'data_offsets' must be [begin, end]"));
  EXPECT_THAT(with("[-8,0]", 16).message(), HasSubstr("'data_offsets' must be"));
  EXPECT_TRUE(with("[8,16]", 16).ok());
}

TEST(SafetensorsReader, RefusesBadDtypeAndShapeMismatch) {
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})",
                                    std::string(8, '\0')))
                  .message(),
              HasSubstr("tensor 'a': unknown dtype 'F7'"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')))
                  .message(),
              HasSubstr("missing string 'dtype'"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                                    std::string(20, '\0')))
                  .message(),
              HasSubstr("tensor 'a': shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20] hold 20"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                                    std::string(8, '\0')))
                  .message(),
              HasSubstr("must list non-negative integers"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
                                    std::string(8, '\0')))
                  .message(),
              HasSubstr("too large"));
}

TEST(SafetensorsReader, RefusesMalformedHeaders) {
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":)", "")).message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"([1,2])", "")).message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":3})", "")).message(), HasSubstr("tensor 'a': entry is not an object"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"__metadata__":{"k":1}})", "")).message(),
              HasSubstr("'__metadata__' entry 'k' is not a string"));
  EXPECT_THAT(ParseStatus(MakeBytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                    R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                                    "xy"))
                  .message(),
              HasSubstr("names 'a' twice"));
  // Space padding after the JSON is part of the format.
  EXPECT_TRUE(ParseStatus(MakeBytes(R"({"__metadata__":{"k":"v"}}   )", "")).ok());
}

}  // namespace
}  // namespace loupe::safetensors
