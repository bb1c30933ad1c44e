// The one place where absl::Status becomes grpc::Status (and back, for
// clients and tests). Codes map one to one; messages pass unchanged.
#ifndef LOUPE_SERVER_STATUS_UTIL_H_
#define LOUPE_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace loupe {

grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s);

}  // namespace loupe

#endif  // LOUPE_SERVER_STATUS_UTIL_H_
