// Bad input gets a clear error naming the field and the problem, and
// nothing is stored.
#include <filesystem>
#include <fstream>

#include "tests/test_server.h"

namespace loupe {
namespace {

using loupe::testing::Ctx;
using loupe::testing::NoopSpec;
using loupe::testing::TestServer;

void ExpectRefused(TestServer& ts, const loupe::v1::JobSpec& spec, grpc::StatusCode code,
                   const std::string& needle) {
  grpc::Status s = ts.TrySubmit(ts.alice, spec);
  EXPECT_EQ(s.error_code(), code) << s.error_message();
  EXPECT_NE(s.error_message().find(needle), std::string::npos)
      << "'" << s.error_message() << "' should mention '" << needle << "'";
}

TEST(BadInputTest, SpecsAreValidatedWithNamedFields) {
  TestServer ts;
  ExpectRefused(ts, loupe::v1::JobSpec(), grpc::StatusCode::INVALID_ARGUMENT, "names no job kind");

  loupe::v1::JobSpec sae;
  sae.mutable_sae_train()->set_k(5000);
  ExpectRefused(ts, sae, grpc::StatusCode::INVALID_ARGUMENT, "'k'");
  loupe::v1::JobSpec neg;
  neg.mutable_sae_train()->set_d_model(-3);
  ExpectRefused(ts, neg, grpc::StatusCode::INVALID_ARGUMENT,
                "sae.train parameter 'd_model': must be at least");
  loupe::v1::JobSpec src;
  src.mutable_sae_train()->set_source("synthetc");
  ExpectRefused(ts, src, grpc::StatusCode::INVALID_ARGUMENT, "did you mean 'synthetic'");

  auto prio = NoopSpec();
  prio.set_priority(5000);
  ExpectRefused(ts, prio, grpc::StatusCode::INVALID_ARGUMENT, "'priority'");
  auto attempts = NoopSpec();
  attempts.set_max_attempts(-1);
  ExpectRefused(ts, attempts, grpc::StatusCode::INVALID_ARGUMENT, "'max_attempts'");
  auto limit = NoopSpec();
  limit.mutable_time_limit()->set_seconds(-5);
  ExpectRefused(ts, limit, grpc::StatusCode::INVALID_ARGUMENT, "'time_limit'");
  auto label = NoopSpec();
  (*label.mutable_labels())[""] = "x";
  ExpectRefused(ts, label, grpc::StatusCode::INVALID_ARGUMENT, "'labels'");
  auto steps = NoopSpec();
  steps.mutable_noop()->set_steps(-1);
  ExpectRefused(ts, steps, grpc::StatusCode::INVALID_ARGUMENT, "noop parameter 'steps'");

  loupe::v1::ListJobsRequest list;
  list.set_owner("*");
  loupe::v1::ListJobsResponse resp;
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.admin).get(), list, &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 0) << "nothing refused was stored";
}

TEST(BadInputTest, ReferencesAreChecked) {
  auto root = loupe::testing::FreshDir("roots");
  std::filesystem::create_directories(root / "data");
  std::ofstream(root / "data" / "ok.txt") << "hello";
  std::ofstream(root / "outside.txt") << "secret";
  TestServer ts(1, {(root / "data").string()});
  auto ref = [](const std::string& r) {
    auto s = NoopSpec(1);
    s.mutable_noop()->set_input(r);
    return s;
  };
  ExpectRefused(ts, ref((root / "data" / ".." / "outside.txt").string()),
                grpc::StatusCode::INVALID_ARGUMENT, "'..'");
  ExpectRefused(ts, ref((root / "outside.txt").string()), grpc::StatusCode::PERMISSION_DENIED,
                "outside the allowed roots");
  ExpectRefused(ts, ref("relative.txt"), grpc::StatusCode::INVALID_ARGUMENT, "dataset:ID");
  ExpectRefused(ts, ref("dataset:00000000000000ff"), grpc::StatusCode::INVALID_ARGUMENT,
                "not found");
  ExpectRefused(ts, ref("job:0123456789ab"), grpc::StatusCode::INVALID_ARGUMENT, "not found");
  ExpectRefused(ts, ref("job:nope"), grpc::StatusCode::INVALID_ARGUMENT, "job id");
  // An allowed path works end to end.
  loupe::v1::Job ok = ts.Submit(ts.alice, ref((root / "data" / "ok.txt").string()));
  EXPECT_EQ(ts.WaitDone(ts.alice, ok.id()).state(), loupe::v1::SUCCEEDED);
  std::filesystem::remove_all(root);
}

TEST(BadInputTest, OversizedMessagesAreRefused) {
  TestServer ts;
  auto spec = NoopSpec();
  spec.mutable_noop()->set_fail_with(std::string(17 << 20, 'x'));
  grpc::Status s = ts.TrySubmit(ts.alice, spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
}

TEST(BadInputTest, MalformedIdsAndTokens) {
  TestServer ts;
  loupe::v1::GetJobRequest get;
  get.set_id("../../etc/passwd");
  loupe::v1::Job out;
  grpc::Status s = ts.stub->GetJob(Ctx(ts.alice).get(), get, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  get.set_id("0123456789ab");
  EXPECT_EQ(ts.stub->GetJob(Ctx(ts.alice).get(), get, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  loupe::v1::ListJobsRequest list;
  list.set_page_token("garbage");
  loupe::v1::ListJobsResponse resp;
  EXPECT_EQ(ts.stub->ListJobs(Ctx(ts.alice).get(), list, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  loupe::v1::WatchJobRequest w;
  w.set_id("0123456789ab");
  w.set_after_seq(-1);
  grpc::Status ws;
  auto wctx = Ctx(ts.alice);
  auto reader = ts.stub->WatchJob(wctx.get(), w);
  loupe::v1::JobEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace loupe
