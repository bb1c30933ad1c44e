// Scheduling through a real server: priority, cancellation, time limits,
// retries, concurrency and graceful shutdown.
#include "google/protobuf/util/time_util.h"
#include "tests/test_server.h"

namespace loupe {
namespace {

using google::protobuf::util::TimeUtil;
using loupe::testing::Ctx;
using loupe::testing::NoopSpec;
using loupe::testing::TestServer;

void WaitRunning(TestServer& ts, const std::string& token, const std::string& id) {
  absl::Time end = absl::Now() + absl::Seconds(30);
  while (absl::Now() < end) {
    if (ts.Get(token, id).state() == loupe::v1::RUNNING) return;
    absl::SleepFor(absl::Milliseconds(5));
  }
  FAIL() << "job " << id << " never started";
}

int64_t StartedUs(const loupe::v1::Job& j) { return TimeUtil::TimestampToMicroseconds(j.started_at()); }

TEST(SchedulerTest, PriorityFirstThenSubmissionOrder) {
  TestServer ts(1);
  loupe::v1::Job blocker = ts.Submit(ts.alice, NoopSpec(20, 20));
  WaitRunning(ts, ts.alice, blocker.id());
  auto with_prio = [&](int p) {
    auto s = NoopSpec(1);
    s.set_priority(p);
    return ts.Submit(ts.alice, s).id();
  };
  std::string low = with_prio(0), high1 = with_prio(5), mid = with_prio(1), high2 = with_prio(5);
  std::vector<std::string> order = {high1, high2, mid, low};
  std::vector<int64_t> started;
  for (const auto& id : order) {
    auto j = ts.WaitDone(ts.alice, id);
    EXPECT_EQ(j.state(), loupe::v1::SUCCEEDED);
    started.push_back(StartedUs(j));
  }
  EXPECT_TRUE(std::is_sorted(started.begin(), started.end()))
      << "jobs must start in priority, then submission, order";
}

TEST(SchedulerTest, CancellingARunningJobStopsItWithinASecond) {
  TestServer ts(1);
  loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(100000, 5));
  WaitRunning(ts, ts.alice, job.id());
  absl::SleepFor(absl::Milliseconds(100));
  absl::Time t0 = absl::Now();
  loupe::v1::CancelJobRequest req;
  req.set_id(job.id());
  loupe::v1::Job out;
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.alice).get(), req, &out).ok());
  loupe::v1::Job done = ts.WaitDone(ts.alice, job.id());
  EXPECT_EQ(done.state(), loupe::v1::CANCELLED);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
  EXPECT_EQ(done.error(), "cancelled by user");
  // Cancelling again changes nothing; a queued job is cancelled at once.
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.alice).get(), req, &out).ok());
  EXPECT_EQ(out.state(), loupe::v1::CANCELLED);
}

TEST(SchedulerTest, CancellingSaeTrainStopsItWithinASecond) {
  TestServer ts(1);
  loupe::v1::JobSpec spec;
  spec.mutable_sae_train()->set_steps(1000000);
  loupe::v1::Job job = ts.Submit(ts.alice, spec);
  absl::Time end = absl::Now() + absl::Seconds(60);
  while (absl::Now() < end && ts.Get(ts.alice, job.id()).progress_step() < 5) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(ts.Get(ts.alice, job.id()).state(), loupe::v1::RUNNING);
  absl::Time t0 = absl::Now();
  loupe::v1::CancelJobRequest req;
  req.set_id(job.id());
  loupe::v1::Job out;
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.alice).get(), req, &out).ok());
  loupe::v1::Job done = ts.WaitDone(ts.alice, job.id());
  EXPECT_EQ(done.state(), loupe::v1::CANCELLED);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));
}

TEST(SchedulerTest, CancellingAQueuedJobNeverRunsIt) {
  TestServer ts(1);
  loupe::v1::Job blocker = ts.Submit(ts.alice, NoopSpec(20, 10));
  loupe::v1::Job queued = ts.Submit(ts.alice, NoopSpec(1));
  loupe::v1::CancelJobRequest req;
  req.set_id(queued.id());
  loupe::v1::Job out;
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.alice).get(), req, &out).ok());
  EXPECT_EQ(out.state(), loupe::v1::CANCELLED);
  ts.WaitDone(ts.alice, blocker.id());
  loupe::v1::Job after = ts.Get(ts.alice, queued.id());
  EXPECT_EQ(after.state(), loupe::v1::CANCELLED);
  EXPECT_EQ(after.attempt(), 0);
}

TEST(SchedulerTest, TimeLimitFailsTheJob) {
  TestServer ts(1);
  auto spec = NoopSpec(1000, 10);
  spec.mutable_time_limit()->set_nanos(300 * 1000 * 1000);
  loupe::v1::Job job = ts.Submit(ts.alice, spec);
  loupe::v1::Job done = ts.WaitDone(ts.alice, job.id());
  EXPECT_EQ(done.state(), loupe::v1::FAILED);
  EXPECT_NE(done.error().find("time limit"), std::string::npos) << done.error();
  EXPECT_LT(done.progress_step(), 100);
}

TEST(SchedulerTest, FailedAttemptsAreRetriedUpToMaxAttempts) {
  TestServer ts(1);
  auto spec = NoopSpec(2);
  spec.mutable_noop()->set_fail_with("flaky");
  spec.set_max_attempts(3);
  loupe::v1::Job job = ts.Submit(ts.alice, spec);
  loupe::v1::Job done = ts.WaitDone(ts.alice, job.id());
  EXPECT_EQ(done.state(), loupe::v1::FAILED);
  EXPECT_EQ(done.attempt(), 3);
  EXPECT_EQ(done.error(), "flaky");
  std::vector<loupe::v1::JobEvent> events = ts.Watch(ts.alice, job.id(), 0);
  int running = 0, requeued = 0;
  for (const auto& e : events) {
    if (!e.has_state()) continue;
    running += e.state().state() == loupe::v1::RUNNING;
    requeued += e.state().state() == loupe::v1::QUEUED && e.attempt() > 0;
  }
  EXPECT_EQ(running, 3);
  EXPECT_EQ(requeued, 2);
}

TEST(SchedulerTest, WorkersRunJobsConcurrently) {
  TestServer ts(2);
  loupe::v1::Job a = ts.Submit(ts.alice, NoopSpec(20, 20));
  loupe::v1::Job b = ts.Submit(ts.alice, NoopSpec(20, 20));
  auto ja = ts.WaitDone(ts.alice, a.id());
  auto jb = ts.WaitDone(ts.alice, b.id());
  // b started before a finished.
  EXPECT_LT(StartedUs(jb), TimeUtil::TimestampToMicroseconds(ja.finished_at()));
}

TEST(SchedulerTest, GracefulShutdownRequeuesWithoutUsingAnAttempt) {
  auto dir = loupe::testing::FreshDir("graceful");
  std::string id;
  {
    TestServer ts(1, {}, dir);
    loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(100, 20));
    id = job.id();
    WaitRunning(ts, ts.alice, id);
    absl::SleepFor(absl::Milliseconds(100));
    ts.server().Shutdown();  // what SIGTERM does
  }
  TestServer restarted(1, {}, dir);
  loupe::v1::Job done = restarted.WaitDone(restarted.alice, id);
  EXPECT_EQ(done.state(), loupe::v1::SUCCEEDED);
  EXPECT_EQ(done.attempt(), 1) << "an interrupted attempt does not count";
  bool saw_interrupt = false;
  for (const auto& e : restarted.Watch(restarted.alice, id, 0)) {
    saw_interrupt |= e.has_state() && e.state().message().find("shutdown") != std::string::npos;
  }
  EXPECT_TRUE(saw_interrupt);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loupe
