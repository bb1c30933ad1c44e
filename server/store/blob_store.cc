#include "absl/strings/string_view.h"
#include "server/store/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace loupe::store {
namespace fs = std::filesystem;

namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno("open dir", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync dir", dir);
}

std::string TempName() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat("tmp-", ::getpid(), "-", counter++, "-", rng() % 1000000007);
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }
void Sha256::Update(absl::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, md, &len);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(md), len));
}
std::string Sha256::Of(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.HexDigest();
}

BlobWriter::BlobWriter(const BlobStore* store, std::string tmp_path, int fd)
    : store_(store), tmp_path_(std::move(tmp_path)), fd_(fd) {}

BlobWriter::~BlobWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

absl::Status BlobWriter::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already closed");
  sha_.Update(data);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", tmp_path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  size_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<BlobInfo> BlobWriter::Commit(absl::string_view expected_sha256) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already closed");
  if (::fsync(fd_) != 0) return Errno("fsync", tmp_path_);
  ::close(fd_);
  fd_ = -1;
  BlobInfo info{sha_.HexDigest(), size_};
  if (!expected_sha256.empty() && expected_sha256 != info.sha256) {
    return absl::DataLossError(absl::StrCat("sha256 mismatch: content hashes to ", info.sha256,
                                            ", expected ", expected_sha256));
  }
  if (absl::Status s = store_->Publish(tmp_path_, info.sha256); !s.ok()) return s;
  committed_ = true;
  return info;
}

BlobStore::BlobStore(std::string root) : root_(std::move(root)) {}

absl::Status BlobStore::Init() {
  std::error_code ec;
  fs::create_directories(fs::path(root_) / "tmp", ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", root_, ": ", ec.message()));
  // Temporary files of a crashed process are garbage.
  for (const auto& e : fs::directory_iterator(fs::path(root_) / "tmp", ec)) {
    fs::remove(e.path(), ec);
  }
  return absl::OkStatus();
}

std::string BlobStore::PathOf(absl::string_view sha256) const {
  return (fs::path(root_) / std::string(sha256.substr(0, 2)) / std::string(sha256)).string();
}

bool BlobStore::Contains(absl::string_view sha256) const {
  std::error_code ec;
  return sha256.size() == 64 && fs::exists(PathOf(sha256), ec);
}

absl::StatusOr<std::unique_ptr<BlobWriter>> BlobStore::NewWriter() const {
  std::string tmp = (fs::path(root_) / "tmp" / TempName()).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", tmp);
  return std::unique_ptr<BlobWriter>(new BlobWriter(this, tmp, fd));
}

absl::Status BlobStore::Publish(const std::string& tmp_path, const std::string& sha) const {
  std::string dest = PathOf(sha);
  std::string dir = fs::path(dest).parent_path().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ec.message()));
  if (fs::exists(dest, ec)) {
    ::unlink(tmp_path.c_str());  // same content already stored
    return absl::OkStatus();
  }
  if (::rename(tmp_path.c_str(), dest.c_str()) != 0) return Errno("rename to", dest);
  return FsyncDir(dir);
}

absl::StatusOr<BlobInfo> BlobStore::PutBytes(absl::string_view bytes) const {
  auto w = NewWriter();
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Append(bytes); !s.ok()) return s;
  return (*w)->Commit();
}

absl::StatusOr<BlobInfo> BlobStore::PutFile(const std::string& path) const {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  auto w = NewWriter();
  if (!w.ok()) {
    ::close(fd);
    return w.status();
  }
  std::string buf(1 << 20, '\0');
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno("read", path);
    }
    if (n == 0) break;
    if (absl::Status s = (*w)->Append(absl::string_view(buf.data(), n)); !s.ok()) {
      ::close(fd);
      return s;
    }
  }
  ::close(fd);
  absl::StatusOr<BlobInfo> info = (*w)->Commit();
  if (info.ok()) ::unlink(path.c_str());
  return info;
}

}  // namespace loupe::store
