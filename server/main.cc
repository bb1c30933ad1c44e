// loupe-server: the Loupe job server, and its `token create` admin command.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "server/process_tuning.h"
#include "server/server.h"
#include "server/store/store.h"
#include "workers/torch_threads.h"

namespace {

int CreateToken(const std::string& user, bool admin, const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  auto store = loupe::store::Store::Open((std::filesystem::path(data_dir) / "loupe.db").string());
  if (!store.ok()) {
    std::cerr << "loupe-server: " << store.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<std::string> token = (*store)->CreateToken(user, admin);
  if (!token.ok()) {
    std::cerr << "loupe-server: " << token.status().message() << "\n";
    return 1;
  }
  std::cerr << "created a token for " << user << (admin ? " (admin)" : "")
            << "; it is shown once and stored only as a hash:\n";
  std::cout << *token << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP (LibTorch's thread pool) reads OMP_WAIT_POLICY when the library
  // loads, before main. Its default, spinning between parallel regions, burns
  // whole cores on a shared server and slows every other job; ask for passive
  // waiting by re-executing once with it set, unless the operator chose.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::execv("/proc/self/exe", argv);
    // If exec fails we simply run with the default policy.
  }
  loupe::TuneProcessForServing();
  CLI::App app{"Loupe job server: runs analysis jobs submitted over gRPC"};
  app.require_subcommand(0, 1);
  loupe::ServerOptions options;
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.manager.workers = 1;
  int threads_per_job = 0;
  app.add_option("--listen", options.listen, "Address to listen on (HOST:PORT)")
      ->capture_default_str();
  auto* data_dir_opt = app.add_option("--data-dir", options.manager.data_dir,
                                      "Directory for the database, artifacts and datasets");
  app.add_option("--workers", options.manager.workers, "Jobs that run at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--threads-per-job", threads_per_job,
                 "LibTorch threads per job (default: cores / workers)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--allowed-root", options.manager.allowed_roots,
                 "Server directory that job parameters may name (repeatable)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--tls-cert", options.tls_cert_file, "PEM certificate chain")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls_key_file, "PEM private key")->check(CLI::ExistingFile);

  CLI::App* token = app.add_subcommand("token", "Manage access tokens");
  token->require_subcommand(1);
  CLI::App* create = token->add_subcommand("create", "Create a user token; prints it last");
  std::string user, token_data_dir;
  bool admin = false;
  create->add_option("USER", user, "User name")->required();
  create->add_flag("--admin", admin, "The user may see and cancel every job");
  create->add_option("--data-dir", token_data_dir, "The server's data directory")->required();

  CLI11_PARSE(app, argc, argv);
  if (create->parsed()) return CreateToken(user, admin, token_data_dir);
  if (options.manager.data_dir.empty()) {
    std::cerr << "loupe-server: --data-dir is required\n";
    return 2;
  }
  (void)data_dir_opt;
  options.manager.threads_per_job =
      threads_per_job > 0 ? threads_per_job : std::max(1, hw / options.manager.workers);
  options.manager.thread_init = loupe::InitTorchThreads;

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<loupe::LoupeServer>> server =
      loupe::LoupeServer::Start(options);
  if (!server.ok()) {
    std::cerr << "loupe-server: " << server.status().message() << "\n";
    return 1;
  }
  std::cerr << "loupe-server: listening on " << options.listen << " (port " << (*server)->port()
            << "), data in " << options.manager.data_dir << ", " << options.manager.workers
            << " worker(s) x " << options.manager.threads_per_job << " thread(s)" << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cerr << "loupe-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", shutting down gracefully" << std::endl;
  // In-flight unary calls end within milliseconds; open watch streams are
  // cancelled at the deadline and clients reconnect with their last seq.
  (*server)->Shutdown(absl::Seconds(1));
  std::cerr << "loupe-server: stopped" << std::endl;
  return 0;
}
