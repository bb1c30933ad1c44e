// Authenticator: maps "authorization: Bearer <token>" metadata to a user.
//
// Tokens are stored hashed (sha256); known hashes are cached in memory so a
// hot RPC path costs one hash, not a database read. Thread-safe.
#ifndef LOUPE_SERVER_AUTH_H_
#define LOUPE_SERVER_AUTH_H_

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace loupe {

class Authenticator {
 public:
  explicit Authenticator(store::Store* store) : store_(store) {}

  // UNAUTHENTICATED when the header is missing, malformed or unknown.
  absl::StatusOr<store::User> Authenticate(absl::string_view authorization_header);

 private:
  store::Store* store_;
  std::mutex mu_;
  std::unordered_map<std::string, store::User> cache_;  // guarded by mu_
};

// True when the user may see and act on a job owned by `owner`.
inline bool MayAccess(const store::User& user, const std::string& owner) {
  return user.admin || user.name == owner;
}

}  // namespace loupe

#endif  // LOUPE_SERVER_AUTH_H_
