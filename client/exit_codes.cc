#include "client/exit_codes.h"

namespace loupe::cli {

int ExitCodeForStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnreachable;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitAuth;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ALREADY_EXISTS:
      return kExitInvalidArgument;
    default:
      return kExitServerError;
  }
}

int ExitCodeForJobState(loupe::v1::JobState state) {
  switch (state) {
    case loupe::v1::SUCCEEDED:
      return kExitOk;
    case loupe::v1::FAILED:
      return kExitJobFailed;
    case loupe::v1::CANCELLED:
      return kExitJobCancelled;
    default:
      return kExitServerError;
  }
}

}  // namespace loupe::cli
