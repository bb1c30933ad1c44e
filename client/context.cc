#include "client/context.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/connection.h"
#include "client/exit_codes.h"

namespace loupe::cli {

std::unique_ptr<grpc::ClientContext> Context::NewCall(bool streaming) const {
  auto call = std::make_unique<grpc::ClientContext>();
  AddBearerToken(call.get(), token);
  if (!streaming && call_timeout > absl::ZeroDuration() && call_timeout != absl::InfiniteDuration()) {
    call->set_deadline(absl::ToChronoTime(absl::Now() + call_timeout));
  }
  return call;
}

CliError RpcError(const Context& ctx, const grpc::Status& status, const std::string& what) {
  const int code = ExitCodeForStatus(status.error_code());
  std::string detail = status.error_message();
  std::string msg;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      msg = absl::StrCat(what, ": cannot reach the Loupe server at ", ctx.server, " (", detail,
                         "); is it running? Set --server or ", kServerEnv);
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      msg = absl::StrCat(what, ": the server at ", ctx.server, " did not answer in time (",
                         detail, ")");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      msg = absl::StrCat(what, ": not authenticated: ", detail,
                         ctx.token.empty()
                             ? absl::StrCat(" (no token given: use --token or ", kTokenEnv, ")")
                             : "");
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      msg = absl::StrCat(what, ": permission denied: ", detail);
      break;
    default:
      msg = absl::StrCat(what, ": ", detail.empty() ? "error" : detail);
      if (code == kExitServerError) {
        absl::StrAppend(&msg, " (server status ", static_cast<int>(status.error_code()), ")");
      }
  }
  return CliError(code, msg);
}

bool IsRetryableStreamStatus(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::CANCELLED;
}

int RunGuarded(Context& ctx, const std::function<int()>& command) {
  try {
    return command();
  } catch (const CliError& e) {
    ctx.Out().flush();
    ctx.Err() << "loupe: error: " << e.what() << "\n";
    ctx.Err().flush();
    return e.exit_code();
  } catch (const std::filesystem::filesystem_error& e) {
    ctx.Out().flush();
    ctx.Err() << "loupe: error: " << e.what() << "\n";
    ctx.Err().flush();
    return kExitLocalIo;
  } catch (const std::exception& e) {
    ctx.Out().flush();
    ctx.Err() << "loupe: error: " << e.what() << "\n";
    ctx.Err().flush();
    return kExitServerError;
  }
}

}  // namespace loupe::cli
