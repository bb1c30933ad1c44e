#include "absl/strings/string_view.h"
#include "server/auth.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "server/store/blob_store.h"

namespace loupe {

absl::StatusOr<store::User> Authenticator::Authenticate(absl::string_view header) {
  if (header.empty()) {
    return absl::UnauthenticatedError(
        "missing token: send 'authorization: Bearer <token>' (loupe --token or LOUPE_TOKEN)");
  }
  absl::string_view token = header;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer <token>'");
  }
  if (token.empty() || token.size() > 256) return absl::UnauthenticatedError("invalid token");
  std::string hash = store::Sha256::Of(token);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end()) return it->second;
  }
  absl::StatusOr<store::User> user = store_->UserForTokenHash(hash);
  if (absl::IsNotFound(user.status())) return absl::UnauthenticatedError("invalid token");
  if (!user.ok()) return user.status();
  std::lock_guard<std::mutex> l(mu_);
  cache_[hash] = *user;
  return user;
}

}  // namespace loupe
