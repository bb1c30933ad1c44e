#include "client/file_util.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace loupe::cli {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.HexDigest();
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return h.HexDigest();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return ss.str();
}

std::string GuessMediaType(std::string_view path) {
  static const std::map<std::string, std::string> kTypes = {
      {".json", "application/json"},
      {".jsonl", "application/x-ndjson"},
      {".ndjson", "application/x-ndjson"},
      {".csv", "text/csv"},
      {".tsv", "text/tab-separated-values"},
      {".txt", "text/plain"},
      {".md", "text/markdown"},
      {".npy", "application/x-npy"},
      {".npz", "application/x-npz"},
      {".safetensors", "application/x-safetensors"},
      {".pt", "application/x-pytorch"},
      {".pth", "application/x-pytorch"},
      {".parquet", "application/vnd.apache.parquet"},
      {".arrow", "application/vnd.apache.arrow.file"},
      {".gz", "application/gzip"},
      {".zst", "application/zstd"},
      {".tar", "application/x-tar"},
      {".zip", "application/zip"},
      {".bin", "application/octet-stream"},
  };
  std::string base = BaseName(path);
  size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) return "application/octet-stream";
  auto it = kTypes.find(absl::AsciiStrToLower(base.substr(dot)));
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace loupe::cli
