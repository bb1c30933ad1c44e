// What every command runs with: the stub, the output streams, the output
// mode, and the knobs tests turn (clock, sleep, terminal).
//
// Commands take a Context and return an exit code; they report failure by
// throwing CliError, which RunGuarded turns into "loupe: error: <message>"
// on the error stream and the error's exit code.
#ifndef LOUPE_CLIENT_CONTEXT_H_
#define LOUPE_CLIENT_CONTEXT_H_

#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "loupe/v1/service.grpc.pb.h"

namespace loupe::cli {

// Deadline of unary calls (streams have none: a watch may last hours).
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(60);

class CliError : public std::runtime_error {
 public:
  CliError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

struct Context {
  loupe::v1::JobService::StubInterface* stub = nullptr;
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  std::istream* in = &std::cin;  // "-f -" reads the spec from here
  bool json = false;
  std::string server;  // for messages only
  std::string token;
  absl::Duration call_timeout = kDefaultCallTimeout;

  // Human output on a terminal: watch redraws a progress bar with \r.
  bool tty = false;
  int term_width = 80;

  std::function<absl::Time()> now = [] { return absl::Now(); };
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };

  // Streams broken with UNAVAILABLE are retried this many times in a row,
  // waiting reconnect_backoff, doubled each time (capped at 10s).
  int max_reconnects = 5;
  absl::Duration reconnect_backoff = absl::Milliseconds(500);
  // Without a terminal, watch prints progress at most this often.
  absl::Duration plain_progress_interval = absl::Seconds(5);

  std::ostream& Out() const { return *out; }
  std::ostream& Err() const { return *err; }

  // A ClientContext with the bearer token; unary calls also get a deadline.
  std::unique_ptr<grpc::ClientContext> NewCall(bool streaming = false) const;
};

// A CliError for a failed RPC. `what` names the attempt ("get job j-1"); the
// message adds hints for unreachable servers and missing tokens.
CliError RpcError(const Context& ctx, const grpc::Status& status, const std::string& what);

// Whether a broken stream is worth resuming: UNAVAILABLE (connection lost,
// server restarting) or CANCELLED (the server cancelled the call while
// shutting down; this client never cancels its streams itself).
bool IsRetryableStreamStatus(const grpc::Status& status);

// Runs `command`, turning CliError (and stray exceptions) into a message on
// ctx.err and an exit code.
int RunGuarded(Context& ctx, const std::function<int()>& command);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_CONTEXT_H_
