#include "workers/runtime/worker_pool.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "gtest/gtest.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/noop/noop_kind.h"
#include "workers/runtime/testing/fake_job_context.h"

namespace loupe {
namespace {

class ThrowingKind : public TypedJobKind<loupe::v1::NoopParams> {
 public:
  std::string name() const override { return "noop"; }
  std::string description() const override { return ""; }
  std::vector<ParamSpec> params() const override { return {}; }

 protected:
  absl::Status RunJob(const loupe::v1::NoopParams&, JobContext&) const override {
    throw std::runtime_error("boom");
  }
};

// Hands out a fixed list of assignments, then stops.
class ListSource : public JobSource {
 public:
  std::optional<Assignment> Next() override {
    std::lock_guard<std::mutex> l(mu);
    if (todo.empty()) return std::nullopt;
    Assignment a = std::move(todo.front());
    todo.pop_front();
    return a;
  }
  std::unique_ptr<JobContext> MakeContext(const Assignment&) override {
    return std::make_unique<testing::FakeJobContext>();
  }
  void Finish(const Assignment& a, JobContext&, absl::Status outcome) override {
    std::lock_guard<std::mutex> l(mu);
    outcomes[a.job_id] = outcome;
  }
  std::mutex mu;
  std::deque<Assignment> todo;
  std::map<std::string, absl::Status> outcomes;
};

Assignment Make(const JobKind* kind, const std::string& id, int steps, const std::string& fail = "") {
  Assignment a;
  a.job_id = id;
  a.attempt = 1;
  a.kind = kind;
  auto p = std::make_unique<loupe::v1::NoopParams>();
  p->set_steps(steps);
  if (!fail.empty()) p->set_fail_with(fail);
  a.params = std::move(p);
  return a;
}

TEST(WorkerPoolTest, RunsEveryAssignmentAndRecordsOutcomes) {
  auto noop = MakeNoopKind();
  ThrowingKind thrower;
  ListSource src;
  for (int i = 0; i < 20; ++i) src.todo.push_back(Make(noop.get(), "ok" + std::to_string(i), 3));
  src.todo.push_back(Make(noop.get(), "fails", 1, "as asked"));
  src.todo.push_back(Make(&thrower, "throws", 1));
  std::atomic<int> inits{0};
  WorkerPool pool(&src, {3, 2, [&](int threads) {
                           EXPECT_EQ(threads, 2);
                           ++inits;
                         }});
  pool.Start();
  pool.Join();
  EXPECT_EQ(inits.load(), 3);
  ASSERT_EQ(src.outcomes.size(), 22u);
  EXPECT_TRUE(src.outcomes["ok7"].ok());
  EXPECT_EQ(src.outcomes["fails"].message(), "as asked");
  EXPECT_EQ(src.outcomes["throws"].code(), absl::StatusCode::kInternal);
  EXPECT_NE(src.outcomes["throws"].message().find("boom"), std::string::npos);
}

TEST(NoopKindTest, StopsWhenCancelled) {
  auto noop = MakeNoopKind();
  testing::FakeJobContext ctx;
  ctx.cancel_after_checks = 3;
  loupe::v1::NoopParams p;
  p.set_steps(1000);
  absl::Status s = noop->Run(p, ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ctx.progress.size(), 3u);
}

}  // namespace
}  // namespace loupe
