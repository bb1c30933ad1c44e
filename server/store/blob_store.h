// BlobStore: content-addressed files under <data-dir>/blobs/ab/abcdef….
//
// A blob is written to a temporary file, fsynced, then renamed to its sha256,
// so a reader never sees a partial blob and a crash leaves at most an orphan
// temporary file. Blobs are immutable once named. Thread-safe: methods share
// no mutable state (each writer has its own temporary file).
#ifndef LOUPE_SERVER_STORE_BLOB_STORE_H_
#define LOUPE_SERVER_STORE_BLOB_STORE_H_

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loupe::store {

struct BlobInfo {
  std::string sha256;  // lower-case hex
  int64_t size = 0;
};

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  void Update(absl::string_view data);
  std::string HexDigest();  // finishes; call once
  static std::string Of(absl::string_view data);

 private:
  EVP_MD_CTX* ctx_;
};

class BlobStore;

// Streams one blob in; Commit names it by its hash, destruction without
// Commit removes the temporary file.
class BlobWriter {
 public:
  ~BlobWriter();
  absl::Status Append(absl::string_view data);
  int64_t size() const { return size_; }
  // Fails with DATA_LOSS if `expected_sha256` is given and differs.
  absl::StatusOr<BlobInfo> Commit(absl::string_view expected_sha256 = "");

 private:
  friend class BlobStore;
  BlobWriter(const BlobStore* store, std::string tmp_path, int fd);
  const BlobStore* store_;
  std::string tmp_path_;
  int fd_;
  int64_t size_ = 0;
  Sha256 sha_;
  bool committed_ = false;
};

class BlobStore {
 public:
  explicit BlobStore(std::string root);  // <data-dir>/blobs
  absl::Status Init();

  absl::StatusOr<std::unique_ptr<BlobWriter>> NewWriter() const;
  absl::StatusOr<BlobInfo> PutBytes(absl::string_view bytes) const;
  // Takes the file at `path` (renamed when possible, else copied, then removed).
  absl::StatusOr<BlobInfo> PutFile(const std::string& path) const;

  std::string PathOf(absl::string_view sha256) const;
  bool Contains(absl::string_view sha256) const;
  const std::string& root() const { return root_; }

 private:
  friend class BlobWriter;
  absl::Status Publish(const std::string& tmp_path, const std::string& sha) const;
  std::string root_;
};

}  // namespace loupe::store

#endif  // LOUPE_SERVER_STORE_BLOB_STORE_H_
