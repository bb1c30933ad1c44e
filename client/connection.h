// Where the client connects and how it authenticates.
//
// The server address and the token come from --server / --token, else from
// LOUPE_SERVER / LOUPE_TOKEN, else the default address (no token). Every RPC
// carries "authorization: Bearer <token>" metadata when a token is set.
#ifndef LOUPE_CLIENT_CONNECTION_H_
#define LOUPE_CLIENT_CONNECTION_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

namespace loupe::cli {

// The port a Loupe server listens on unless told otherwise. The one place
// this number lives on the client side.
inline constexpr int kDefaultPort = 7733;
inline constexpr char kDefaultHost[] = "127.0.0.1";
inline constexpr char kServerEnv[] = "LOUPE_SERVER";
inline constexpr char kTokenEnv[] = "LOUPE_TOKEN";

// "127.0.0.1:7733".
std::string DefaultServerAddress();

// Adds the default port to an address without one: "gpu-box" ->
// "gpu-box:7733", "[::1]" -> "[::1]:7733". gRPC target URIs
// ("dns:///host:port", "unix:/path", "ipv4:...") are returned unchanged.
std::string NormalizeServerAddress(const std::string& address);

using GetEnvFn = std::function<std::optional<std::string>(const std::string&)>;

struct ConnectionSettings {
  std::string server;  // normalized address
  std::string token;   // empty: no authorization metadata
};

// Flag, else environment variable, else default. Empty values count as unset.
ConnectionSettings ResolveConnectionSettings(const std::string& flag_server,
                                             const std::string& flag_token,
                                             const GetEnvFn& getenv_fn);

// An insecure channel to `address`, with message limits large enough for
// artifact chunks.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// Adds "authorization: Bearer <token>"; does nothing for an empty token.
void AddBearerToken(grpc::ClientContext* context, const std::string& token);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_CONNECTION_H_
