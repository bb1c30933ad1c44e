// LoupeServer: one running Loupe server (store, workers and gRPC frontend).
//
// Used by loupe-server's main, by the integration tests and by the
// benchmarks, which run it in-process on a loopback port. Start() returns
// once the server accepts calls; Shutdown() is graceful and idempotent.
#ifndef LOUPE_SERVER_SERVER_H_
#define LOUPE_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/auth.h"
#include "server/job_manager.h"
#include "server/job_service.h"
#include "workers/runtime/registry.h"

namespace loupe {

struct ServerOptions {
  std::string listen = "127.0.0.1:7733";
  ManagerOptions manager;
  std::string tls_cert_file;  // PEM; both or neither
  std::string tls_key_file;
  int max_message_bytes = 16 << 20;
};

// True for addresses that only this machine can reach (127.0.0.0/8, ::1,
// localhost, unix sockets).
bool IsLoopbackAddress(const std::string& listen);

class LoupeServer {
 public:
  // Refuses a non-loopback address without TLS.
  static absl::StatusOr<std::unique_ptr<LoupeServer>> Start(ServerOptions options);
  ~LoupeServer();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  JobManager& manager() { return *manager_; }
  // Stops accepting calls, ends open streams within `deadline`, stops the
  // workers (running jobs are requeued without losing an attempt).
  void Shutdown(absl::Duration deadline = absl::Seconds(5));
  void Wait();

 private:
  LoupeServer() = default;
  KindRegistry kinds_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<JobServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace loupe

#endif  // LOUPE_SERVER_SERVER_H_
