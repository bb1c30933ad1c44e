// Local file helpers for upload/download and spec files.
#ifndef LOUPE_CLIENT_FILE_UTIL_H_
#define LOUPE_CLIENT_FILE_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace loupe::cli {

// Incremental SHA-256 (OpenSSL), lower-case hex.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  std::string HexDigest();  // finishes; call once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
// SHA-256 of a whole file; the error names the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// The whole file ("-" is not handled here). The error names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// A media type from the file name's extension; application/octet-stream
// when unknown.
std::string GuessMediaType(std::string_view path);

// The last path component: "a/b/c.bin" -> "c.bin".
std::string BaseName(std::string_view path);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_FILE_UTIL_H_
