#include "server/references.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "server/server.h"

namespace loupe {
namespace {

namespace fs = std::filesystem;

class ReferencesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("loupe-refs-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "allowed" / "sub");
    fs::create_directories(base_ / "secret");
    std::ofstream(base_ / "allowed" / "sub" / "data.txt") << "x";
    std::ofstream(base_ / "secret" / "key") << "k";
    fs::create_symlink(base_ / "secret", base_ / "allowed" / "escape");
    roots_ = {(base_ / "allowed").string()};
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_;
  std::vector<std::string> roots_;
};

TEST_F(ReferencesTest, DatasetAndJobForms) {
  auto d = ParseReference("dataset:0123456789abcdef", roots_);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->type, Reference::Type::kDataset);
  auto j = ParseReference("job:0123456789ab", roots_);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->type, Reference::Type::kJob);
  auto a = ParseReference("job:0123456789ab/model.safetensors", roots_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->type, Reference::Type::kJobArtifact);
  EXPECT_EQ(a->name, "model.safetensors");
  EXPECT_FALSE(ParseReference("job:xyz", roots_).ok());
  EXPECT_FALSE(ParseReference("job:0123456789ab/../x", roots_).ok());
  EXPECT_FALSE(ParseReference("dataset:", roots_).ok());
  EXPECT_FALSE(ParseReference("dataset:../../etc", roots_).ok());
}

TEST_F(ReferencesTest, PathsMustStayUnderAllowedRoots) {
  auto ok = ParseReference((base_ / "allowed" / "sub" / "data.txt").string(), roots_);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->type, Reference::Type::kPath);

  auto dotdot = ParseReference((base_ / "allowed" / ".." / "secret" / "key").string(), roots_);
  EXPECT_EQ(dotdot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dotdot.status().message().find(".."), std::string::npos);

  auto outside = ParseReference((base_ / "secret" / "key").string(), roots_);
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kPermissionDenied);

  auto symlink = ParseReference((base_ / "allowed" / "escape" / "key").string(), roots_);
  EXPECT_EQ(symlink.status().code(), absl::StatusCode::kPermissionDenied);

  // A sibling whose name starts with the root's name is not under it.
  fs::create_directories(base_ / "allowed2");
  std::ofstream(base_ / "allowed2" / "f") << "f";
  EXPECT_FALSE(ParseReference((base_ / "allowed2" / "f").string(), roots_).ok());

  EXPECT_EQ(ParseReference("relative/path", roots_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseReference((base_ / "allowed" / "sub" / "data.txt").string(), {}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(ParseReference((base_ / "allowed" / "missing").string(), roots_).ok());
}

TEST(ArtifactNameTest, Shapes) {
  EXPECT_TRUE(IsValidArtifactName("sae_weights.safetensors"));
  EXPECT_TRUE(IsValidArtifactName("cfg.json"));
  EXPECT_FALSE(IsValidArtifactName(""));
  EXPECT_FALSE(IsValidArtifactName(".."));
  EXPECT_FALSE(IsValidArtifactName("a/b"));
  EXPECT_FALSE(IsValidArtifactName(std::string(200, 'a')));
}

TEST(LoopbackTest, OnlyLocalAddressesCount) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7733"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7733"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:7733"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/loupe.sock"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:7733"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:7733"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:7733"));
  EXPECT_FALSE(IsLoopbackAddress("example.org:7733"));
}

}  // namespace
}  // namespace loupe
