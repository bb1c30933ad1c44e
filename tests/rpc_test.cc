// Every JobService RPC through a real server on a loopback port.
#include <grpcpp/generic/generic_stub.h>

#include "google/protobuf/util/time_util.h"
#include "server/store/blob_store.h"
#include "tests/test_server.h"

namespace loupe {
namespace {

using loupe::testing::Ctx;
using loupe::testing::NoopSpec;
using loupe::testing::TestServer;

std::string ExpectedNoopBytes(int64_t n) {
  std::string b(static_cast<size_t>(n), '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i % 251);
  return b;
}

TEST(RpcTest, SubmitRunsToSuccessWithResult) {
  TestServer ts;
  auto spec = NoopSpec(5);
  (*spec.mutable_labels())["exp"] = "a";
  loupe::v1::Job job = ts.Submit(ts.alice, spec);
  EXPECT_EQ(job.kind(), "noop");
  EXPECT_EQ(job.owner(), "alice");
  EXPECT_EQ(job.spec().max_attempts(), 1);  // default applied
  EXPECT_EQ(job.spec().noop().sleep_ms(), 0);
  loupe::v1::Job done = ts.WaitDone(ts.alice, job.id());
  EXPECT_EQ(done.state(), loupe::v1::SUCCEEDED);
  EXPECT_EQ(done.attempt(), 1);
  EXPECT_EQ(done.progress_step(), 5);
  EXPECT_TRUE(done.has_finished_at());

  loupe::v1::GetResultRequest rr;
  rr.set_id(job.id());
  loupe::v1::JobResult res;
  ASSERT_TRUE(ts.stub->GetResult(Ctx(ts.alice).get(), rr, &res).ok());
  EXPECT_EQ(res.state(), loupe::v1::SUCCEEDED);
  EXPECT_EQ(res.metrics().at("steps"), 5);
}

TEST(RpcTest, ResultBeforeTheEndIsRefused) {
  TestServer ts;
  loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(200, 10));
  loupe::v1::GetResultRequest rr;
  rr.set_id(job.id());
  loupe::v1::JobResult res;
  grpc::Status s = ts.stub->GetResult(Ctx(ts.alice).get(), rr, &res);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  loupe::v1::CancelJobRequest cr;
  cr.set_id(job.id());
  loupe::v1::Job c;
  ASSERT_TRUE(ts.stub->CancelJob(Ctx(ts.alice).get(), cr, &c).ok());
}

TEST(RpcTest, IdempotencyKeyReturnsTheFirstJob) {
  TestServer ts;
  auto spec = NoopSpec(1);
  spec.set_idempotency_key("run-42");
  loupe::v1::Job a = ts.Submit(ts.alice, spec);
  spec.set_priority(7);
  loupe::v1::Job b = ts.Submit(ts.alice, spec);
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(b.spec().priority(), 0);
  loupe::v1::Job other_user = ts.Submit(ts.bob, spec);
  EXPECT_NE(other_user.id(), a.id());
}

TEST(RpcTest, WatchReplaysThenStreamsAndResumesFromSequence) {
  TestServer ts;
  loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(20, 20));
  // A live watch from the start.
  std::vector<loupe::v1::JobEvent> all = ts.Watch(ts.alice, job.id(), 0);
  ASSERT_GE(all.size(), 4u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].seq(), static_cast<int64_t>(i + 1)) << "events must be gapless";
    EXPECT_EQ(all[i].job_id(), job.id());
  }
  EXPECT_EQ(all.front().state().state(), loupe::v1::QUEUED);
  EXPECT_EQ(all.back().state().state(), loupe::v1::SUCCEEDED);
  bool saw_progress = false, saw_metrics = false, saw_running = false;
  for (const auto& e : all) {
    saw_progress |= e.has_progress();
    saw_metrics |= e.has_metrics();
    saw_running |= e.has_state() && e.state().state() == loupe::v1::RUNNING;
  }
  EXPECT_TRUE(saw_progress && saw_metrics && saw_running);
  int metric_steps = 0;
  for (const auto& e : all) metric_steps += e.has_metrics();
  EXPECT_EQ(metric_steps, 20) << "every step's metrics are kept";

  // A client that saw up to seq k receives exactly the rest.
  int64_t k = all[all.size() / 2].seq();
  std::vector<loupe::v1::JobEvent> rest = ts.Watch(ts.alice, job.id(), k);
  ASSERT_EQ(rest.size(), all.size() - static_cast<size_t>(k));
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].SerializeAsString(), all[k + i].SerializeAsString());
  }
  // After the last event there is nothing more, and the stream ends.
  EXPECT_TRUE(ts.Watch(ts.alice, job.id(), all.back().seq()).empty());
}

TEST(RpcTest, WatchReconnectMidJobMissesNothing) {
  TestServer ts;
  loupe::v1::Job job = ts.Submit(ts.alice, NoopSpec(30, 30));
  // Read a few events, then drop the stream as a broken connection would.
  std::vector<loupe::v1::JobEvent> first;
  {
    loupe::v1::WatchJobRequest req;
    req.set_id(job.id());
    auto ctx = Ctx(ts.alice);
    auto reader = ts.stub->WatchJob(ctx.get(), req);
    loupe::v1::JobEvent e;
    while (first.size() < 4 && reader->Read(&e)) first.push_back(e);
    ctx->TryCancel();
    while (reader->Read(&e)) {
    }
    reader->Finish();
  }
  ASSERT_EQ(first.size(), 4u);
  std::vector<loupe::v1::JobEvent> rest = ts.Watch(ts.alice, job.id(), first.back().seq());
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front().seq(), first.back().seq() + 1);
  for (size_t i = 1; i < rest.size(); ++i) EXPECT_EQ(rest[i].seq(), rest[i - 1].seq() + 1);
  EXPECT_EQ(rest.back().state().state(), loupe::v1::SUCCEEDED);
}

TEST(RpcTest, ArtifactsAreListedAndReadResumably) {
  TestServer ts;
  const int64_t n = 700 * 1024 + 3;  // several chunks
  auto spec = NoopSpec(1);
  spec.mutable_noop()->set_artifact_bytes(n);
  loupe::v1::Job job = ts.Submit(ts.alice, spec);
  ASSERT_EQ(ts.WaitDone(ts.alice, job.id()).state(), loupe::v1::SUCCEEDED);
  const std::string expected = ExpectedNoopBytes(n);

  loupe::v1::GetResultRequest rr;
  rr.set_id(job.id());
  loupe::v1::JobResult res;
  ASSERT_TRUE(ts.stub->GetResult(Ctx(ts.alice).get(), rr, &res).ok());
  ASSERT_EQ(res.artifacts_size(), 1);
  EXPECT_EQ(res.artifacts(0).name(), "noop.bin");
  EXPECT_EQ(res.artifacts(0).size(), n);
  EXPECT_EQ(res.artifacts(0).sha256(), store::Sha256::Of(expected));
  EXPECT_EQ(res.artifacts(0).media_type(), "application/octet-stream");

  auto read = [&](int64_t offset, int64_t limit, grpc::Status* st) {
    loupe::v1::ReadArtifactRequest req;
    req.set_job_id(job.id());
    req.set_name("noop.bin");
    req.set_offset(offset);
    req.set_limit(limit);
    auto ctx = Ctx(ts.alice);
    auto reader = ts.stub->ReadArtifact(ctx.get(), req);
    std::string data;
    loupe::v1::ArtifactChunk c;
    bool first = true;
    while (reader->Read(&c)) {
      EXPECT_EQ(c.offset(), offset + static_cast<int64_t>(data.size()));
      if (first) {
        EXPECT_EQ(c.total_size(), n);
      }
      first = false;
      data += c.data();
    }
    *st = reader->Finish();
    return data;
  };
  grpc::Status st;
  EXPECT_EQ(read(0, 0, &st), expected);
  EXPECT_TRUE(st.ok());
  // Resume from the middle, as a broken download would.
  EXPECT_EQ(read(300000, 0, &st), expected.substr(300000));
  EXPECT_EQ(read(10, 100, &st), expected.substr(10, 100));
  read(n + 1, 0, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  loupe::v1::ReadArtifactRequest missing;
  missing.set_job_id(job.id());
  missing.set_name("nope.bin");
  auto ctx = Ctx(ts.alice);
  auto reader = ts.stub->ReadArtifact(ctx.get(), missing);
  loupe::v1::ArtifactChunk c;
  while (reader->Read(&c)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(RpcTest, ListFiltersNewestFirstWithPages) {
  TestServer ts;
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    auto spec = NoopSpec(0);
    (*spec.mutable_labels())["batch"] = i % 2 ? "odd" : "even";
    ids.push_back(ts.Submit(ts.alice, spec).id());
  }
  ts.Submit(ts.bob, NoopSpec(0));
  std::vector<std::string> seen;
  loupe::v1::ListJobsRequest req;
  req.set_page_size(3);
  while (true) {
    loupe::v1::ListJobsResponse resp;
    ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.alice).get(), req, &resp).ok());
    for (const auto& j : resp.jobs()) seen.push_back(j.id());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, newest_first) << "only alice's jobs, newest first";

  loupe::v1::ListJobsRequest by_label;
  by_label.set_label("batch=odd");
  loupe::v1::ListJobsResponse odd;
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.alice).get(), by_label, &odd).ok());
  EXPECT_EQ(odd.jobs_size(), 3);

  loupe::v1::ListJobsRequest by_kind;
  by_kind.set_kind("sae.train");
  loupe::v1::ListJobsResponse none;
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.alice).get(), by_kind, &none).ok());
  EXPECT_EQ(none.jobs_size(), 0);

  for (const auto& id : ids) ts.WaitDone(ts.alice, id);
  loupe::v1::ListJobsRequest by_state;
  by_state.set_state(loupe::v1::SUCCEEDED);
  loupe::v1::ListJobsResponse done;
  ASSERT_TRUE(ts.stub->ListJobs(Ctx(ts.alice).get(), by_state, &done).ok());
  EXPECT_EQ(done.jobs_size(), 7);
}

TEST(RpcTest, ListJobKindsDescribesParameters) {
  TestServer ts;
  loupe::v1::ListJobKindsRequest req;
  loupe::v1::ListJobKindsResponse resp;
  ASSERT_TRUE(ts.stub->ListJobKinds(Ctx(ts.alice).get(), req, &resp).ok());
  std::set<std::string> names;
  for (const auto& k : resp.kinds()) names.insert(k.name());
  EXPECT_TRUE(names.count("noop"));
  EXPECT_TRUE(names.count("sae.train"));
  req.set_kind("sae.train");
  ASSERT_TRUE(ts.stub->ListJobKinds(Ctx(ts.alice).get(), req, &resp).ok());
  ASSERT_EQ(resp.kinds_size(), 1);
  const auto& k = resp.kinds(0);
  std::map<std::string, loupe::v1::ParamInfo> params;
  for (const auto& p : k.params()) params[p.name()] = p;
  for (const char* n : {"d_model", "n_features", "d_sae", "k", "steps", "batch_size", "lr", "seed"}) {
    ASSERT_TRUE(params.count(n)) << n;
    EXPECT_FALSE(params[n].help().empty()) << n;
  }
  EXPECT_EQ(params["d_model"].type(), "int");
  EXPECT_EQ(params["d_model"].default_value(), "64");
  EXPECT_EQ(params["lr"].type(), "float");
  req.set_kind("sae.trian");
  grpc::Status s = ts.stub->ListJobKinds(Ctx(ts.alice).get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("did you mean 'sae.train'"), std::string::npos);
}

TEST(RpcTest, PipelineWaitsForInputJobAndReadsItsArtifact) {
  TestServer ts;
  auto producer_spec = NoopSpec(10, 30);
  producer_spec.mutable_noop()->set_artifact_bytes(1000);
  loupe::v1::Job producer = ts.Submit(ts.alice, producer_spec);
  auto consumer_spec = NoopSpec(1);
  consumer_spec.set_priority(100);  // would run first if it did not wait
  consumer_spec.mutable_noop()->set_input("job:" + producer.id() + "/noop.bin");
  loupe::v1::Job consumer = ts.Submit(ts.alice, consumer_spec);
  EXPECT_EQ(consumer.depends_on(0), producer.id());
  loupe::v1::Job c = ts.WaitDone(ts.alice, consumer.id());
  loupe::v1::Job p = ts.Get(ts.alice, producer.id());
  ASSERT_EQ(c.state(), loupe::v1::SUCCEEDED) << c.error();
  EXPECT_GE(google::protobuf::util::TimeUtil::TimestampToMicroseconds(c.started_at()),
            google::protobuf::util::TimeUtil::TimestampToMicroseconds(p.finished_at()));
  loupe::v1::GetResultRequest rr;
  rr.set_id(consumer.id());
  loupe::v1::JobResult res;
  ASSERT_TRUE(ts.stub->GetResult(Ctx(ts.alice).get(), rr, &res).ok());
  EXPECT_EQ(res.metrics().at("input_bytes"), 1000);
}

TEST(RpcTest, PipelineFailsClearlyWhenInputJobFails) {
  TestServer ts;
  auto bad = NoopSpec(3, 20);
  bad.mutable_noop()->set_fail_with("producer broke");
  loupe::v1::Job producer = ts.Submit(ts.alice, bad);
  auto consumer_spec = NoopSpec(1);
  consumer_spec.mutable_noop()->set_input("job:" + producer.id());
  loupe::v1::Job consumer = ts.Submit(ts.alice, consumer_spec);
  loupe::v1::Job c = ts.WaitDone(ts.alice, consumer.id());
  EXPECT_EQ(c.state(), loupe::v1::FAILED);
  EXPECT_NE(c.error().find(producer.id()), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("failed"), std::string::npos) << c.error();
  // Referencing an already failed job is refused at submit.
  grpc::Status s = ts.TrySubmit(ts.alice, consumer_spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("producer broke"), std::string::npos) << s.error_message();
}

TEST(RpcTest, HealthAndReflectionAreServed) {
  TestServer ts;
  grpc::GenericStub generic(ts.channel());
  // grpc.health.v1.Health/Check with an empty request: status SERVING (1).
  grpc::ClientContext ctx;
  grpc::ByteBuffer req(nullptr, 0);
  grpc::ByteBuffer resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> l(mu);
                      status = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (auto& s : slices) bytes += std::string(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
  l.unlock();

  // Reflection lists our service.
  grpc::ClientContext rctx;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&rctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const std::string list_services("\x3a\x00", 2);  // field 7 (list_services) = ""
  grpc::Slice slice(list_services);
  grpc::ByteBuffer rb(&slice, 1);
  call->Write(rb, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> rs;
  ASSERT_TRUE(reply.Dump(&rs).ok());
  std::string text;
  for (auto& s : rs) text += std::string(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(text.find("loupe.v1.JobService"), std::string::npos);
  call->WritesDone(reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  grpc::Status fs;
  call->Finish(&fs, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace loupe
