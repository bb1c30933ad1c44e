// The `loupe` command line: flags, subcommands, dispatch.
#ifndef LOUPE_CLIENT_CLI_H_
#define LOUPE_CLIENT_CLI_H_

#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "client/connection.h"
#include "loupe/v1/service.grpc.pb.h"

namespace loupe::cli {

using StubFactory = std::function<std::unique_ptr<loupe::v1::JobService::StubInterface>(
    const std::string& address)>;

// Everything RunCli takes from the process, so tests can replace it.
struct Environment {
  GetEnvFn getenv;
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  std::istream* in = &std::cin;
  bool stdout_is_tty = false;
  int terminal_width = 80;
  StubFactory make_stub;  // called once, after flags parse
};

// The real process: getenv, std::cout/cerr/cin, isatty, the terminal's
// width (TIOCGWINSZ, else $COLUMNS, else 80), a gRPC channel per address.
Environment ProcessEnvironment();

// Parses argv and runs the command; returns the exit code (exit_codes.h).
// Usage errors print "loupe: error: …" and give 2; --help prints help and
// gives 0.
int RunCli(int argc, const char* const* argv, const Environment& env);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_CLI_H_
