#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace loupe {

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string HostOf(const std::string& listen) {
  std::string addr = listen;
  if (absl::StartsWith(addr, "ipv4:")) addr = addr.substr(5);
  if (absl::StartsWith(addr, "ipv6:")) addr = addr.substr(5);
  if (absl::StartsWith(addr, "[")) {
    size_t close = addr.find(']');
    return close == std::string::npos ? addr : addr.substr(1, close - 1);
  }
  size_t colon = addr.rfind(':');
  return colon == std::string::npos ? addr : addr.substr(0, colon);
}

}  // namespace

bool IsLoopbackAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  std::string host = HostOf(listen);
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8
  int a, b, c, d;
  char extra;
  if (std::sscanf(host.c_str(), "%d.%d.%d.%d%c", &a, &b, &c, &d, &extra) == 4) return a == 127;
  return false;
}

absl::StatusOr<std::unique_ptr<LoupeServer>> LoupeServer::Start(ServerOptions options) {
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls && (options.tls_cert_file.empty() || options.tls_key_file.empty())) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  if (!tls && !IsLoopbackAddress(options.listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on ", options.listen,
        " without TLS: tokens would cross the network in clear text. Listen on 127.0.0.1, "
        "or give --tls-cert and --tls-key"));
  }
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile(options.tls_key_file);
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }

  // gRPC takes and drops absl::Mutexes on every call; Abseil's deadlock
  // detection (on in Debian's build) would graph every one of them.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::unique_ptr<LoupeServer> s(new LoupeServer());
  if (absl::Status r = RegisterBuiltinKinds(s->kinds_); !r.ok()) return r;
  absl::StatusOr<std::unique_ptr<JobManager>> m =
      JobManager::Create(options.manager, &s->kinds_);
  if (!m.ok()) return m.status();
  s->manager_ = std::move(*m);
  s->auth_ = std::make_unique<Authenticator>(&s->manager_->store());
  s->service_ = std::make_unique<JobServiceImpl>(s->manager_.get(), s->auth_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds, &s->port_);
  builder.RegisterService(s->service_.get());
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would
  // silently share its connections with the first. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Watches may idle for hours between events; keep their connections alive.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                               " (address in use or invalid)"));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  s->manager_->StartWorkers();
  return s;
}

LoupeServer::~LoupeServer() { Shutdown(); }

void LoupeServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  }
  if (manager_) manager_->Shutdown();
  if (server_) server_->Wait();
}

void LoupeServer::Wait() {
  if (server_) server_->Wait();
}

}  // namespace loupe
