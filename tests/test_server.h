// TestServer: a real LoupeServer on a loopback port with a fresh data dir and
// three users (alice, bob, admin), for integration tests. Not thread-safe
// to set up; the stubs it hands out are.
#ifndef LOUPE_TESTS_TEST_SERVER_H_
#define LOUPE_TESTS_TEST_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "loupe/v1/service.grpc.pb.h"
#include "server/server.h"

namespace loupe::testing {

inline std::filesystem::path FreshDir(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() /
             ("loupe-" + tag + "-" + std::to_string(::getpid()) + "-" +
              std::to_string(absl::ToUnixNanos(absl::Now())));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A client context that carries a bearer token.
inline std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token,
                                                absl::Duration timeout = absl::Seconds(60)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

class TestServer {
 public:
  explicit TestServer(int workers = 1, std::vector<std::string> allowed_roots = {},
                      std::filesystem::path data_dir = {}) {
    owns_dir_ = data_dir.empty();
    dir_ = owns_dir_ ? FreshDir("server") : data_dir;
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.manager.data_dir = (dir_ / "data").string();
    o.manager.workers = workers;
    o.manager.threads_per_job = 1;
    o.manager.allowed_roots = std::move(allowed_roots);
    auto s = LoupeServer::Start(o);
    if (!s.ok()) {
      ADD_FAILURE() << s.status();
      return;
    }
    server_ = std::move(*s);
    alice = *server_->manager().store().CreateToken("alice", false);
    bob = *server_->manager().store().CreateToken("bob", false);
    admin = *server_->manager().store().CreateToken("root", true);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub = loupe::v1::JobService::NewStub(channel_);
  }
  ~TestServer() {
    stub.reset();
    server_.reset();
    if (owns_dir_) std::filesystem::remove_all(dir_);
  }

  // Submits and returns the job, failing the test on error.
  loupe::v1::Job Submit(const std::string& token, const loupe::v1::JobSpec& spec) {
    loupe::v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    loupe::v1::Job job;
    grpc::Status s = stub->SubmitJob(Ctx(token).get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }
  grpc::Status TrySubmit(const std::string& token, const loupe::v1::JobSpec& spec,
                         loupe::v1::Job* job = nullptr) {
    loupe::v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    loupe::v1::Job ignored;
    return stub->SubmitJob(Ctx(token).get(), req, job ? job : &ignored);
  }
  loupe::v1::Job Get(const std::string& token, const std::string& id) {
    loupe::v1::GetJobRequest req;
    req.set_id(id);
    loupe::v1::Job job;
    grpc::Status s = stub->GetJob(Ctx(token).get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }
  // Polls until the job is in a terminal state (or the timeout passes).
  loupe::v1::Job WaitDone(const std::string& token, const std::string& id,
                          absl::Duration timeout = absl::Seconds(120)) {
    absl::Time end = absl::Now() + timeout;
    loupe::v1::Job j;
    while (absl::Now() < end) {
      j = Get(token, id);
      if (j.state() == loupe::v1::SUCCEEDED || j.state() == loupe::v1::FAILED ||
          j.state() == loupe::v1::CANCELLED)
        return j;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "job " << id << " did not finish; state " << j.state();
    return j;
  }
  // Reads the whole watch stream from after_seq.
  std::vector<loupe::v1::JobEvent> Watch(const std::string& token, const std::string& id,
                                         int64_t after_seq, grpc::Status* status = nullptr) {
    loupe::v1::WatchJobRequest req;
    req.set_id(id);
    req.set_after_seq(after_seq);
    auto ctx = Ctx(token);
    auto reader = stub->WatchJob(ctx.get(), req);
    std::vector<loupe::v1::JobEvent> out;
    loupe::v1::JobEvent e;
    while (reader->Read(&e)) out.push_back(e);
    grpc::Status s = reader->Finish();
    if (status) *status = s;
    return out;
  }

  LoupeServer& server() { return *server_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const std::filesystem::path& dir() const { return dir_; }

  std::string alice, bob, admin;
  std::unique_ptr<loupe::v1::JobService::Stub> stub;

 private:
  std::filesystem::path dir_;
  bool owns_dir_ = true;  // a caller-given dir outlives the server (restart tests)
  std::unique_ptr<LoupeServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

inline loupe::v1::JobSpec NoopSpec(int steps = 0, int sleep_ms = 0) {
  loupe::v1::JobSpec spec;
  spec.mutable_noop()->set_steps(steps);
  spec.mutable_noop()->set_sleep_ms(sleep_ms);
  return spec;
}

}  // namespace loupe::testing

#endif  // LOUPE_TESTS_TEST_SERVER_H_
