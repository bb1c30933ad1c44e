// platform_bench: submit latency and throughput and the no-op round trip of
// a real in-process Loupe server on loopback, each beside a floor measured in
// the same run (an empty unary gRPC call plus one durable SQLite commit).
//
//   build/bin/platform_bench [--seconds 5] [--clients 4] [--window 64]
//
// The sequential latencies come from a child process (a client outside the
// server's process, as users' are); the throughput clients share the
// benchmark's process.
//
// Prints a table and the ratios the targets in docs/benchmarks.md refer to.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "echo.grpc.pb.h"
#include "server/process_tuning.h"
#include "server/server.h"
#include "server/store/sqlite.h"
#include "server/store/store.h"

namespace loupe::bench {
namespace {

namespace fs = std::filesystem;

struct Percentiles {
  double p50 = 0, p99 = 0, mean = 0;
  double server_cpu = 0;  // µs of the server process's CPU per call, where measured
};

Percentiles Summarize(std::vector<double> us) {
  Percentiles p;
  if (us.empty()) return p;
  std::sort(us.begin(), us.end());
  p.p50 = us[us.size() / 2];
  p.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double v : us) sum += v;
  p.mean = sum / us.size();
  return p;
}

double MicrosSince(absl::Time t0) { return absl::ToDoubleMicroseconds(absl::Now() - t0); }

// Fills the WAL past SQLite's auto-checkpoint size (1000 pages) in one
// transaction and checkpoints it, so that later commits rewrite the
// beginning of a WAL file that already has its blocks.
absl::Status CycleWal(store::Db& db) {
  return db.Exec(
      "CREATE TABLE warm(b BLOB); INSERT INTO warm VALUES (zeroblob(5000000));"
      "PRAGMA wal_checkpoint(PASSIVE); DROP TABLE warm;");
}

// The floor, part 2: one durable commit, with the store's own settings.
//
// Measured in the steady state of a long-running server, as Loupe's store
// is: SQLite reuses its WAL file from the start after each checkpoint, and a
// commit that overwrites blocks the file already has costs ~40 % less here
// than one that must grow the file (fdatasync then also commits the file
// system's journal). A fresh database would spend its first thousand 1-page
// commits growing the WAL, while the store's 5-page submits cycle it after
// ~200, so the floor first cycles its WAL once.
class CommitFloor {
 public:
  explicit CommitFloor(const fs::path& file) {
    auto db = store::Db::Open(file.string());
    if (!db.ok() || !(*db)->Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)").ok() ||
        !CycleWal(**db).ok()) {
      std::abort();
    }
    db_ = std::move(*db);
  }

  double OneCommitMicros() {
    absl::Time t0 = absl::Now();
    auto st = db_->Cached("INSERT INTO t(v) VALUES (?)");
    (*st)->BindBlob(1, blob_);
    if (!(*st)->Run().ok()) std::abort();
    return MicrosSince(t0);
  }

 private:
  std::unique_ptr<store::Db> db_;
  std::string blob_ = std::string(200, 'x');
};

// Loupe's own write path without the RPC: Store::SubmitJob of a no-op job on
// a plain thread, the same transaction a SubmitJob commits.
class StoreSubmitter {
 public:
  explicit StoreSubmitter(const fs::path& dir) {
    fs::create_directories(dir);
    auto st = store::Store::Open((dir / "loupe.db").string());
    if (!st.ok()) std::abort();
    store_ = std::move(*st);
  }

  double OneSubmitMicros() {
    store::NewJob job;
    job.owner = "bench";
    job.kind = "noop";
    job.spec.mutable_noop();
    job.spec.set_max_attempts(1);
    absl::Time t0 = absl::Now();
    if (!store_->SubmitJobSync(std::move(job)).ok()) std::abort();
    return MicrosSince(t0);
  }

 private:
  std::unique_ptr<store::Store> store_;
};

class EchoService final : public loupe::bench::Echo::CallbackService {
 public:
  explicit EchoService(const fs::path& dir) : commit_(dir / "echo-commit.db") {}

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const Empty*, Empty*) override {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerUnaryReactor* CommitPing(grpc::CallbackServerContext* ctx, const Empty*,
                                       Empty*) override {
    commit_.OneCommitMicros();
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  CommitFloor commit_;
};

// The floor, part 1: an empty unary call through the same gRPC stack.
// Hosts the echo service (part 1 of the floor, and the committing call).
class EchoServer {
 public:
  explicit EchoServer(const fs::path& dir) : service_(dir) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
  }
  ~EchoServer() { server_->Shutdown(); }
  int port() const { return port_; }

 private:
  EchoService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

class EchoClient {
 public:
  explicit EchoClient(int port)
      : stub_(Echo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                grpc::InsecureChannelCredentials()))) {}

  double OneCallMicros() { return Time(&Echo::Stub::Ping); }
  double OneCommittingCallMicros() { return Time(&Echo::Stub::CommitPing); }

 private:
  using Method = grpc::Status (Echo::Stub::*)(grpc::ClientContext*, const Empty&, Empty*);
  double Time(Method m) {
    grpc::ClientContext ctx;
    Empty req, resp;
    absl::Time t0 = absl::Now();
    grpc::Status s = (stub_.get()->*m)(&ctx, req, &resp);
    if (!s.ok()) std::abort();
    return MicrosSince(t0);
  }

  std::unique_ptr<Echo::Stub> stub_;
};

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->AddMetadata("authorization", "Bearer " + token);
  return c;
}

loupe::v1::SubmitJobRequest NoopRequest() {
  loupe::v1::SubmitJobRequest req;
  req.mutable_spec()->mutable_noop();
  return req;
}

double OneSubmitMicros(loupe::v1::JobService::Stub* stub, const std::string& token) {
  static const loupe::v1::SubmitJobRequest req = NoopRequest();
  loupe::v1::Job job;
  auto ctx = Ctx(token);
  absl::Time t0 = absl::Now();
  grpc::Status s = stub->SubmitJob(ctx.get(), req, &job);
  double us = MicrosSince(t0);
  if (!s.ok()) {
    std::fprintf(stderr, "submit failed: %s\n", s.error_message().c_str());
    std::abort();
  }
  return us;
}

struct SequentialLatencies {
  Percentiles echo, commit, store_submit, submit, echo_commit;
};

// CPU time (user + system) the process `pid` has used, in µs. The kernel
// counts it in clock ticks, so only sums over many calls are meaningful.
double ProcessCpuMicros(int pid) {
  std::FILE* f = std::fopen(absl::StrFormat("/proc/%d/stat", pid).c_str(), "r");
  if (f == nullptr) return 0;
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after the parenthesised command name; utime and stime are the
  // 14th and 15th fields of the line.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  std::vector<std::string> fields = absl::StrSplit(p + 2, ' ');
  if (fields.size() < 13) return 0;
  long utime = std::atol(fields[11].c_str()), stime = std::atol(fields[12].c_str());
  return (utime + stime) * 1e6 / ::sysconf(_SC_CLK_TCK);
}

// The shared machine's load drifts; measuring the floor and the submit in
// alternating short blocks lets any drift hit both sides of the ratio alike.
// The RPC columns also record the server process's CPU time per call.
SequentialLatencies MeasureInterleaved(EchoClient& echo, CommitFloor& commit,
                                       StoreSubmitter& store,
                                       loupe::v1::JobService::Stub* stub, const std::string& token,
                                       int samples, int server_pid) {
  constexpr int kBlock = 25;
  // Warm-up: connections, caches, statements, and 200 submits of 5 WAL
  // pages each cycle the store's WAL once (see CommitFloor).
  for (int i = 0; i < 200; ++i) {
    echo.OneCallMicros();
    echo.OneCommittingCallMicros();
    store.OneSubmitMicros();
    OneSubmitMicros(stub, token);
  }
  std::vector<double> e, c, ss, s, ec;
  double cpu_e = 0, cpu_s = 0, cpu_ec = 0;
  // `cpu`: where to add the server's CPU time, or nullptr for the columns
  // that do not call a server.
  auto block = [&](double* cpu, const std::function<void()>& one) {
    const double before = cpu ? ProcessCpuMicros(server_pid) : 0;
    for (int i = 0; i < kBlock; ++i) one();
    if (cpu) *cpu += ProcessCpuMicros(server_pid) - before;
  };
  for (int done = 0; done < samples; done += kBlock) {
    block(&cpu_e, [&] { e.push_back(echo.OneCallMicros()); });
    block(nullptr, [&] { c.push_back(commit.OneCommitMicros()); });
    block(nullptr, [&] { ss.push_back(store.OneSubmitMicros()); });
    block(&cpu_s, [&] { s.push_back(OneSubmitMicros(stub, token)); });
    block(&cpu_ec, [&] { ec.push_back(echo.OneCommittingCallMicros()); });
  }
  SequentialLatencies l{Summarize(e), Summarize(c), Summarize(ss), Summarize(s), Summarize(ec)};
  l.echo.server_cpu = cpu_e / e.size();
  l.submit.server_cpu = cpu_s / s.size();
  l.echo_commit.server_cpu = cpu_ec / ec.size();
  return l;
}

// Keeps `window` calls in flight on each of `clients` channels for
// `seconds`; returns completed calls per second. `start_call(stub_index,
// done)` starts one call and runs done(ok) when it completes.
double Throughput(int clients, int window, double seconds,
                  const std::function<void(int, std::function<void(bool)>)>& start_call) {
  std::atomic<int64_t> completed{0}, failed{0};
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::function<void(int)> issue = [&](int c) {
    ++in_flight;
    start_call(c, [&, c](bool ok) {
      (ok ? completed : failed)++;
      if (!stop) issue(c);
      --in_flight;
    });
  };
  absl::Time t0 = absl::Now();
  for (int c = 0; c < clients; ++c) {
    for (int w = 0; w < window; ++w) issue(c);
  }
  absl::SleepFor(absl::Seconds(seconds));
  int64_t n = completed.load();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - t0);
  stop = true;
  while (in_flight.load() > 0) absl::SleepFor(absl::Milliseconds(5));
  if (failed.load() > 0) std::fprintf(stderr, "warning: %ld calls failed\n", (long)failed.load());
  return n / elapsed;
}

std::shared_ptr<grpc::Channel> BulkChannel(int port, int index) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.channel_id", index);  // separate connections
  // A bulk client has no use for transparent retries (it retries itself).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

double SubmitThroughput(int port, const std::string& token, int clients, int window,
                        double seconds) {
  struct Call {
    grpc::ClientContext ctx;
    loupe::v1::SubmitJobRequest req = NoopRequest();
    loupe::v1::Job resp;
  };
  std::vector<std::unique_ptr<loupe::v1::JobService::Stub>> stubs;
  for (int c = 0; c < clients; ++c) stubs.push_back(loupe::v1::JobService::NewStub(BulkChannel(port, c)));
  return Throughput(clients, window, seconds, [&](int c, std::function<void(bool)> done) {
    auto* call = new Call();
    call->ctx.AddMetadata("authorization", "Bearer " + token);
    stubs[c]->async()->SubmitJob(&call->ctx, &call->req, &call->resp,
                                 [call, done = std::move(done)](grpc::Status s) {
                                   delete call;
                                   done(s.ok());
                                 });
  });
}

// The throughput floor: empty calls with the same clients and window.
double EchoThroughput(const fs::path& dir, int clients, int window, double seconds) {
  EchoService service(dir);
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  struct Call {
    grpc::ClientContext ctx;
    Empty req, resp;
  };
  std::vector<std::unique_ptr<Echo::Stub>> stubs;
  for (int c = 0; c < clients; ++c) stubs.push_back(Echo::NewStub(BulkChannel(port, c)));
  double rate = Throughput(clients, window, seconds, [&](int c, std::function<void(bool)> done) {
    auto* call = new Call();
    stubs[c]->async()->Ping(&call->ctx, &call->req, &call->resp,
                            [call, done = std::move(done)](grpc::Status s) {
                              delete call;
                              done(s.ok());
                            });
  });
  server->Shutdown();
  return rate;
}

// Submit a no-op and read WatchJob until SUCCEEDED arrives.
Percentiles NoopRoundTrip(loupe::v1::JobService::Stub* stub, const std::string& token, int n) {
  std::vector<double> us;
  auto req = NoopRequest();
  for (int i = 0; i < n + 20; ++i) {
    absl::Time t0 = absl::Now();
    loupe::v1::Job job;
    if (!stub->SubmitJob(Ctx(token).get(), req, &job).ok()) std::abort();
    loupe::v1::WatchJobRequest w;
    w.set_id(job.id());
    auto ctx = Ctx(token);
    auto reader = stub->WatchJob(ctx.get(), w);
    loupe::v1::JobEvent e;
    bool done = false;
    while (!done && reader->Read(&e)) {
      done = e.has_state() && e.state().state() == loupe::v1::SUCCEEDED;
    }
    if (i >= 20) us.push_back(MicrosSince(t0));
    if (!done) std::abort();
    reader->Finish();
  }
  return Summarize(us);
}

struct Server {
  std::unique_ptr<LoupeServer> server;
  std::string token;
  std::unique_ptr<loupe::v1::JobService::Stub> stub;
};

Server StartServer(const fs::path& dir, int workers) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.manager.data_dir = dir.string();
  o.manager.workers = workers;
  auto s = LoupeServer::Start(o);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.status().message()).c_str());
    std::exit(1);
  }
  Server out;
  out.server = std::move(*s);
  out.token = *out.server->manager().store().CreateToken("bench", false);
  out.stub = loupe::v1::JobService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(out.server->port()), grpc::InsecureChannelCredentials()));
  return out;
}

// The sequential latencies are measured from a separate process, as a user's
// client would call: a client in the server's own process shares gRPC's
// poller with the server, and every reply then costs an extra thread wake-up
// that no real client pays.
int RunLatencyClient(int echo_port, int loupe_port, const std::string& token, const fs::path& dir,
                     int samples, int server_pid) {
  EchoClient echo(echo_port);
  CommitFloor commit(dir / "floor.db");
  StoreSubmitter store(dir / "client-store");
  auto stub = loupe::v1::JobService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(loupe_port), grpc::InsecureChannelCredentials()));
  SequentialLatencies l =
      MeasureInterleaved(echo, commit, store, stub.get(), token, samples, server_pid);
  for (const Percentiles* p : {&l.echo, &l.commit, &l.store_submit, &l.submit, &l.echo_commit}) {
    std::printf("%.3f %.3f %.3f %.3f\n", p->p50, p->p99, p->mean, p->server_cpu);
  }
  return 0;
}

SequentialLatencies MeasureFromAnotherProcess(int echo_port, int loupe_port,
                                              const std::string& token, const fs::path& dir,
                                              int samples) {
  const std::string cmd = absl::StrFormat(
      "'/proc/%d/exe' --latency-client --echo-port %d --loupe-port %d --token '%s' --dir '%s' "
      "--samples %d --server-pid %d",
      ::getpid(), echo_port, loupe_port, token, dir.string(), samples, ::getpid());
  FILE* child = ::popen(cmd.c_str(), "r");
  if (child == nullptr) {
    std::perror("popen");
    std::exit(1);
  }
  SequentialLatencies l;
  int read = 0;
  for (Percentiles* p : {&l.echo, &l.commit, &l.store_submit, &l.submit, &l.echo_commit}) {
    read += std::fscanf(child, "%lf %lf %lf %lf", &p->p50, &p->p99, &p->mean, &p->server_cpu);
  }
  if (::pclose(child) != 0 || read != 20) {
    std::fprintf(stderr, "the latency client failed\n");
    std::exit(1);
  }
  return l;
}

int Main(int argc, char** argv) {
  CLI::App app{"Loupe platform benchmark"};
  double seconds = 5;
  int clients = 4, window = 64, samples = 1000, rt_samples = 300;
  std::string dir_arg;
  app.add_option("--seconds", seconds, "Length of the throughput run")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent client connections")->capture_default_str();
  app.add_option("--window", window, "Submits in flight per client")->capture_default_str();
  app.add_option("--samples", samples, "Sequential calls per latency measurement (each of echo, commit, submit)")
      ->capture_default_str();
  app.add_option("--rt-samples", rt_samples, "No-op round trips")->capture_default_str();
  app.add_option("--dir", dir_arg, "Scratch directory (on the disk under test)");
  bool latency_client = false;
  int echo_port = 0, loupe_port = 0, server_pid = 0;
  std::string token;
  app.add_flag("--latency-client", latency_client)->group("");  // the child's mode
  app.add_option("--echo-port", echo_port)->group("");
  app.add_option("--loupe-port", loupe_port)->group("");
  app.add_option("--server-pid", server_pid)->group("");
  app.add_option("--token", token)->group("");
  CLI11_PARSE(app, argc, argv);
  if (latency_client) {
    return RunLatencyClient(echo_port, loupe_port, token, dir_arg, samples, server_pid);
  }
  // The same process settings as loupe-server's main().
  loupe::TuneProcessForServing();

  fs::path dir = dir_arg.empty() ? fs::temp_directory_path() / ("loupe-bench-" + std::to_string(::getpid()))
                                 : fs::path(dir_arg);
  fs::remove_all(dir);
  fs::create_directories(dir);

  Percentiles echo, commit, store_submit, submit, echo_commit, rt;
  double echo_rate = EchoThroughput(dir, clients, window, seconds);
  double throughput = 0;
  {
    // Submits are measured against an idle worker pool: the admission path.
    Server s = StartServer(dir / "submit", 0);
    EchoServer echo_server(dir);
    SequentialLatencies l =
        MeasureFromAnotherProcess(echo_server.port(), s.server->port(), s.token, dir, samples);
    echo = l.echo;
    commit = l.commit;
    store_submit = l.store_submit;
    submit = l.submit;
    echo_commit = l.echo_commit;
    throughput = SubmitThroughput(s.server->port(), s.token, clients, window, seconds);
  }
  double floor_p50 = echo.p50 + commit.p50;
  {
    Server s = StartServer(dir / "roundtrip", 1);
    rt = NoopRoundTrip(s.stub.get(), s.token, rt_samples);
  }
  fs::remove_all(dir);

  std::printf("%-44s %10s %10s %10s %12s\n", "measurement", "p50 us", "p99 us", "mean us",
              "server CPU");
  auto row = [](const char* name, const Percentiles& p) {
    std::printf("%-44s %10.1f %10.1f %10.1f", name, p.p50, p.p99, p.mean);
    if (p.server_cpu > 0) std::printf(" %9.0f us", p.server_cpu);
    std::printf("\n");
  };
  row("floor: empty unary gRPC call (loopback)", echo);
  row("floor: one durable SQLite commit (FULL)", commit);
  std::printf("%-44s %10.1f\n", "floor: sum of p50s", floor_p50);
  row("Store::SubmitJob alone, plain thread", store_submit);
  row("SubmitJob, one client, sequential", submit);
  row("empty call whose handler commits (FULL)", echo_commit);
  row("no-op round trip (submit -> SUCCEEDED seen)", rt);
  std::printf("%-44s %10.0f /s  (%d clients x %d in flight, %.0f s)\n",
              "floor: empty unary calls, concurrent clients", echo_rate, clients, window, seconds);
  std::printf("%-44s %10.0f /s  (same clients)\n", "durable submits, concurrent clients",
              throughput);
  std::printf("\nsubmit p50 / floor p50      = %.2f  (target <= 1.5)\n", submit.p50 / floor_p50);
  std::printf("submit p50 / committing call p50 = %.2f  (what Loupe adds to one durable RPC)\n",
              submit.p50 / echo_commit.p50);
  std::printf("store submit p50 / commit p50 = %.2f  (the store's transaction against a 1-row one)\n",
              store_submit.p50 / commit.p50);
  std::printf("concurrent submits/s        = %.0f  (target >= 10000; %.0f%% of the empty-call rate)\n",
              throughput, 100 * throughput / echo_rate);
  std::printf("no-op round trip p50        = %.2f ms (target < 5)\n", rt.p50 / 1000);
  return 0;
}

}  // namespace
}  // namespace loupe::bench

int main(int argc, char** argv) { return loupe::bench::Main(argc, argv); }
