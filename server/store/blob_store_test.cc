#include "server/store/blob_store.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace loupe::store {
namespace {

namespace fs = std::filesystem;

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("loupe-blob-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    blobs_ = std::make_unique<BlobStore>(root_.string());
    ASSERT_TRUE(blobs_->Init().ok());
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256::Of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::Of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(BlobStoreTest, PutBytesIsContentAddressed) {
  auto a = blobs_->PutBytes("hello");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->sha256, Sha256::Of("hello"));
  EXPECT_EQ(a->size, 5);
  EXPECT_TRUE(blobs_->Contains(a->sha256));
  std::ifstream in(blobs_->PathOf(a->sha256));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "hello");
  auto b = blobs_->PutBytes("hello");  // same content, same blob
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->sha256, b->sha256);
}

TEST_F(BlobStoreTest, WriterChecksExpectedHash) {
  auto w = blobs_->NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc").ok());
  auto r = (*w)->Commit(std::string(64, '0'));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(blobs_->Contains(Sha256::Of("abc")));
  // The temporary file is gone once the writer is.
  w->reset();
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(BlobStoreTest, AbandonedWriterLeavesNothing) {
  {
    auto w = blobs_->NewWriter();
    ASSERT_TRUE((*w)->Append("partial").ok());
  }
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(BlobStoreTest, PutFileConsumesTheFile) {
  fs::path f = root_ / "in.bin";
  std::ofstream(f) << "file content";
  auto r = blobs_->PutFile(f.string());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(fs::exists(f));
  EXPECT_EQ(r->sha256, Sha256::Of("file content"));
}

}  // namespace
}  // namespace loupe::store
