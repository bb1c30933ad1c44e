// Every RPC needs a valid token; users see and cancel only their own jobs.
#include "tests/test_server.h"

namespace loupe {
namespace {

using loupe::testing::Ctx;
using loupe::testing::NoopSpec;
using loupe::testing::TestServer;

TEST(AuthTest, MissingOrWrongTokenIsUnauthenticated) {
  TestServer ts;
  loupe::v1::ListJobsRequest req;
  loupe::v1::ListJobsResponse resp;
  grpc::Status none = ts.stub->ListJobs(Ctx("").get(), req, &resp);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(none.error_message().find("missing token"), std::string::npos);
  grpc::Status wrong = ts.stub->ListJobs(Ctx("loupe_notatoken").get(), req, &resp);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Basic abc");
  EXPECT_EQ(ts.stub->ListJobs(ctx.get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  loupe::v1::Job job;
  loupe::v1::SubmitJobRequest sreq;
  *sreq.mutable_spec() = NoopSpec();
  EXPECT_EQ(ts.stub->SubmitJob(Ctx("").get(), sreq, &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Nothing was submitted.
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.admin).get(), [] {
    loupe::v1::ListJobsRequest r;
    r.set_owner("*");
    return r;
  }(), &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 0);
  // Streams refuse too.
  loupe::v1::WatchJobRequest w;
  w.set_id("0123456789ab");
  auto wctx = Ctx("");
  auto reader = ts.stub->WatchJob(wctx.get(), w);
  loupe::v1::JobEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(AuthTest, OtherUsersJobsAreOffLimits) {
  TestServer ts;
  loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(100, 20));
  loupe::v1::GetJobRequest get;
  get.set_id(job.id());
  loupe::v1::Job out;
  EXPECT_EQ(ts.stub->GetJob(Ctx(ts.bob).get(), get, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  loupe::v1::CancelJobRequest cancel;
  cancel.set_id(job.id());
  EXPECT_EQ(ts.stub->CancelJob(Ctx(ts.bob).get(), cancel, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(ts.Get(ts.alice, job.id()).state(), loupe::v1::CANCELLED);
  grpc::Status ws;
  EXPECT_TRUE(ts.Watch(ts.bob, job.id(), 0, &ws).empty());
  EXPECT_EQ(ws.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  loupe::v1::GetResultRequest rr;
  rr.set_id(job.id());
  loupe::v1::JobResult res;
  EXPECT_EQ(ts.stub->GetResult(Ctx(ts.bob).get(), rr, &res).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  loupe::v1::ReadArtifactRequest ar;
  ar.set_job_id(job.id());
  ar.set_name("x");
  auto actx = Ctx(ts.bob);
  auto reader = ts.stub->ReadArtifact(actx.get(), ar);
  loupe::v1::ArtifactChunk c;
  EXPECT_FALSE(reader->Read(&c));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Bob's list does not show it; listing alice's or everyone's needs admin.
  loupe::v1::ListJobsRequest list;
  loupe::v1::ListJobsResponse resp;
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.bob).get(), list, &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 0);
  list.set_owner("alice");
  EXPECT_EQ(ts.stub->ListJobs(Ctx(ts.bob).get(), list, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.admin).get(), list, &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 1);

  // A job of bob's cannot take alice's job as input either.
  auto spec = NoopSpec(1);
  spec.mutable_noop()->set_input("job:" + job.id());
  EXPECT_EQ(ts.TrySubmit(ts.bob, spec).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // The admin may cancel anyone's job.
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.admin).get(), cancel, &out).ok());
  EXPECT_EQ(ts.WaitDone(ts.alice, job.id()).state(), loupe::v1::CANCELLED);
}

}  // namespace
}  // namespace loupe
