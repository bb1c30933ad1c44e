#include "client/connection.h"

#include <algorithm>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace loupe::cli {

std::string DefaultServerAddress() {
  return absl::StrCat(kDefaultHost, ":", kDefaultPort);
}

std::string NormalizeServerAddress(const std::string& address) {
  std::string a(absl::StripAsciiWhitespace(address));
  if (a.empty()) return DefaultServerAddress();
  // gRPC target URIs carry their own syntax.
  for (const char* scheme : {"dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:"}) {
    if (absl::StartsWith(a, scheme)) return a;
  }
  if (a.front() == '[') {  // [v6] or [v6]:port
    return absl::EndsWith(a, "]") ? absl::StrCat(a, ":", kDefaultPort) : a;
  }
  size_t colons = std::count(a.begin(), a.end(), ':');
  if (colons == 0) return absl::StrCat(a, ":", kDefaultPort);
  if (colons > 1) return absl::StrCat("[", a, "]:", kDefaultPort);  // bare v6
  if (a.back() == ':') return absl::StrCat(a, kDefaultPort);       // "host:"
  return a;
}

ConnectionSettings ResolveConnectionSettings(const std::string& flag_server,
                                             const std::string& flag_token,
                                             const GetEnvFn& getenv_fn) {
  auto env = [&](const char* name) -> std::string {
    if (!getenv_fn) return "";
    std::optional<std::string> v = getenv_fn(name);
    return v ? *v : "";
  };
  ConnectionSettings s;
  std::string server = flag_server.empty() ? env(kServerEnv) : flag_server;
  s.server = NormalizeServerAddress(server);
  s.token = flag_token.empty() ? env(kTokenEnv) : flag_token;
  s.token = std::string(absl::StripAsciiWhitespace(s.token));
  return s;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void AddBearerToken(grpc::ClientContext* context, const std::string& token) {
  if (token.empty()) return;
  context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

}  // namespace loupe::cli
