// kill -9 of a real loupe-server process: no acknowledged job is lost, a
// running job is requeued as its next attempt, and its events stay gapless.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <thread>

#include "tests/test_server.h"

#ifndef LOUPE_SERVER_BIN
#error "LOUPE_SERVER_BIN must name the loupe-server executable"
#endif

namespace loupe {
namespace {

using loupe::testing::Ctx;
using loupe::testing::NoopSpec;

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string CreateToken(const std::string& dir, const std::string& user) {
  std::string cmd = std::string(LOUPE_SERVER_BIN) + " token create " + user + " --data-dir " + dir +
                    " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 512> buf{};
  std::string last;
  while (std::fgets(buf.data(), buf.size(), p)) last = buf.data();
  EXPECT_EQ(::pclose(p), 0);
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  return last;
}

// One loupe-server child process.
class ServerProcess {
 public:
  ServerProcess(const std::string& dir, int port) : port_(port) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string listen = "127.0.0.1:" + std::to_string(port);
      ::execl(LOUPE_SERVER_BIN, LOUPE_SERVER_BIN, "--listen", listen.c_str(), "--data-dir",
              dir.c_str(), "--workers", "1", "--threads-per-job", "1", nullptr);
      ::_exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) Kill(SIGKILL);
  }
  // Waits until the server answers. Each try uses a fresh channel: a channel
  // that failed to connect backs off for seconds before trying again.
  void WaitReady(const std::string& token) {
    absl::Time end = absl::Now() + absl::Seconds(60);
    while (absl::Now() < end) {
      channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                     grpc::InsecureChannelCredentials());
      stub = loupe::v1::JobService::NewStub(channel_);
      loupe::v1::ListJobsRequest req;
      loupe::v1::ListJobsResponse resp;
      auto ctx = Ctx(token, absl::Milliseconds(500));
      ctx->set_wait_for_ready(true);
      grpc::Status s = stub->ListJobs(ctx.get(), req, &resp);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
          s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED)
        return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    FAIL() << "server did not become ready";
  }
  int Kill(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  loupe::v1::Job Get(const std::string& token, const std::string& id) {
    loupe::v1::GetJobRequest req;
    req.set_id(id);
    loupe::v1::Job job;
    grpc::Status s = stub->GetJob(Ctx(token).get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }
  loupe::v1::Job Submit(const std::string& token, const loupe::v1::JobSpec& spec) {
    loupe::v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    loupe::v1::Job job;
    grpc::Status s = stub->SubmitJob(Ctx(token).get(), req, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }
  loupe::v1::Job WaitDone(const std::string& token, const std::string& id) {
    absl::Time end = absl::Now() + absl::Seconds(60);
    loupe::v1::Job j;
    while (absl::Now() < end) {
      j = Get(token, id);
      if (j.state() == loupe::v1::SUCCEEDED || j.state() == loupe::v1::FAILED ||
          j.state() == loupe::v1::CANCELLED)
        return j;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "job did not finish";
    return j;
  }
  std::unique_ptr<loupe::v1::JobService::Stub> stub;

 private:
  int port_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = loupe::testing::FreshDir("crash").string();
    token_ = CreateToken(dir_, "alice");
    ASSERT_EQ(token_.rfind("loupe_", 0), 0u) << token_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, token_;
};

TEST_F(CrashRecoveryTest, KilledMidJobCompletesOnAttemptTwo) {
  int port = FreePort();
  std::string running_id, queued_id, once_id;
  {
    ServerProcess server(dir_, port);
    server.WaitReady(token_);
    auto spec = NoopSpec(60, 50);
    spec.set_max_attempts(2);
    running_id = server.Submit(token_, spec).id();
    queued_id = server.Submit(token_, NoopSpec(1)).id();
    absl::Time end = absl::Now() + absl::Seconds(30);
    while (absl::Now() < end && server.Get(token_, running_id).progress_step() < 3) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(server.Get(token_, running_id).state(), loupe::v1::RUNNING);
    int status = server.Kill(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  ServerProcess server(dir_, port);
  server.WaitReady(token_);
  loupe::v1::Job done = server.WaitDone(token_, running_id);
  EXPECT_EQ(done.state(), loupe::v1::SUCCEEDED) << done.error();
  EXPECT_EQ(done.attempt(), 2);
  EXPECT_EQ(server.WaitDone(token_, queued_id).state(), loupe::v1::SUCCEEDED);

  // The event log is gapless and tells the story.
  loupe::v1::WatchJobRequest req;
  req.set_id(running_id);
  auto ctx = Ctx(token_);
  auto reader = server.stub->WatchJob(ctx.get(), req);
  std::vector<loupe::v1::JobEvent> events;
  loupe::v1::JobEvent e;
  while (reader->Read(&e)) events.push_back(e);
  ASSERT_TRUE(reader->Finish().ok());
  std::vector<std::string> story;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    if (events[i].has_state()) {
      story.push_back(loupe::v1::JobState_Name(events[i].state().state()) + "@" +
                      std::to_string(events[i].attempt()));
    }
  }
  EXPECT_EQ(story, (std::vector<std::string>{"QUEUED@0", "RUNNING@1", "QUEUED@1", "RUNNING@2",
                                             "SUCCEEDED@2"}));
}

// A long sae.train killed mid-run resumes from its last checkpoint on the
// next attempt instead of starting over, and its state directory is removed
// once it has succeeded.
TEST_F(CrashRecoveryTest, KilledTrainingResumesFromItsCheckpoint) {
  int port = FreePort();
  loupe::v1::JobSpec spec;
  auto* p = spec.mutable_sae_train();
  p->set_architecture("topk");
  p->set_d_model(16);
  p->set_n_features(64);
  p->set_d_sae(128);
  p->set_k(4);
  p->set_batch_size(256);
  p->set_steps(3000);
  p->set_checkpoint_every(100);
  spec.set_max_attempts(2);
  std::string id;
  int64_t reached = 0;
  {
    ServerProcess server(dir_, port);
    server.WaitReady(token_);
    id = server.Submit(token_, spec).id();
    absl::Time end = absl::Now() + absl::Seconds(60);
    while (absl::Now() < end && reached < 400) {
      reached = server.Get(token_, id).progress_step();
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GE(reached, 400) << "training did not get going";
    ASSERT_EQ(server.Get(token_, id).state(), loupe::v1::RUNNING);
    ASSERT_TRUE(WIFSIGNALED(server.Kill(SIGKILL)));
  }
  ASSERT_TRUE(std::filesystem::exists(std::filesystem::path(dir_) / "state" / id));
  ServerProcess server(dir_, port);
  server.WaitReady(token_);
  loupe::v1::Job done = server.WaitDone(token_, id);
  ASSERT_EQ(done.state(), loupe::v1::SUCCEEDED) << done.error();
  EXPECT_EQ(done.attempt(), 2);
  loupe::v1::GetResultRequest req;
  req.set_id(id);
  loupe::v1::JobResult result;
  ASSERT_TRUE(server.stub->GetResult(Ctx(token_).get(), req, &result).ok());
  const double resumed = result.metrics().at("resumed_from_step");
  EXPECT_GE(resumed, 300);
  EXPECT_LE(resumed, static_cast<double>(reached) + 100);
  EXPECT_EQ(static_cast<int64_t>(resumed) % 100, 0);
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir_) / "state" / id));
}

TEST_F(CrashRecoveryTest, ExhaustedAttemptsFailClearly) {
  int port = FreePort();
  std::string id;
  {
    ServerProcess server(dir_, port);
    server.WaitReady(token_);
    id = server.Submit(token_, NoopSpec(100, 50)).id();  // max_attempts 1
    absl::Time end = absl::Now() + absl::Seconds(30);
    while (absl::Now() < end && server.Get(token_, id).state() != loupe::v1::RUNNING) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    server.Kill(SIGKILL);
  }
  ServerProcess server(dir_, port);
  server.WaitReady(token_);
  loupe::v1::Job j = server.Get(token_, id);
  EXPECT_EQ(j.state(), loupe::v1::FAILED);
  EXPECT_NE(j.error().find("server stopped during attempt 1"), std::string::npos) << j.error();
}

TEST_F(CrashRecoveryTest, EveryAcknowledgedSubmitSurvivesKill9) {
  int port = FreePort();
  std::vector<std::string> acked;
  std::mutex mu;
  {
    ServerProcess server(dir_, port);
    server.WaitReady(token_);
    std::vector<std::thread> clients;
    std::atomic<bool> stop{false};
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&] {
        while (!stop) {
          loupe::v1::SubmitJobRequest req;
          *req.mutable_spec() = NoopSpec(0);
          loupe::v1::Job job;
          grpc::Status s = server.stub->SubmitJob(Ctx(token_, absl::Seconds(5)).get(), req, &job);
          if (!s.ok()) return;  // the server died under us
          std::lock_guard<std::mutex> l(mu);
          acked.push_back(job.id());
        }
      });
    }
    absl::SleepFor(absl::Milliseconds(700));
    server.Kill(SIGKILL);  // while submits are in flight
    stop = true;
    for (auto& t : clients) t.join();
  }
  ASSERT_GT(acked.size(), 20u);
  ServerProcess server(dir_, port);
  server.WaitReady(token_);
  for (const auto& id : acked) {
    loupe::v1::GetJobRequest req;
    req.set_id(id);
    loupe::v1::Job job;
    grpc::Status s = server.stub->GetJob(Ctx(token_).get(), req, &job);
    ASSERT_TRUE(s.ok()) << "acknowledged job " << id << " was lost: " << s.error_message();
  }
}

TEST_F(CrashRecoveryTest, SigtermStopsGracefully) {
  int port = FreePort();
  ServerProcess server(dir_, port);
  server.WaitReady(token_);
  std::string id = server.Submit(token_, NoopSpec(1000, 10)).id();
  absl::SleepFor(absl::Milliseconds(300));
  absl::Time t0 = absl::Now();
  int status = server.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(10));
  ServerProcess again(dir_, port);
  again.WaitReady(token_);
  loupe::v1::Job j = again.Get(token_, id);
  EXPECT_NE(j.state(), loupe::v1::FAILED);
  EXPECT_LE(j.attempt(), 1);
}

}  // namespace
}  // namespace loupe
