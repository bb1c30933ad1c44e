// The commands driven against an in-process fake JobService: what they send
// (token, after_seq, offsets, upload header), what they print, and which exit
// code they return. Also RunCli's flag handling.
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <unistd.h>

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "client/cli.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "loupe/v1/service.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace loupe::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A scripted JobService; every handler records what it got.
class FakeJobService final : public v1::JobService::Service {
 public:
  FakeJobService() {
    auto* noop = kinds.add_kinds();
    noop->set_name("noop");
    noop->set_description("does nothing");
    auto* sae = kinds.add_kinds();
    sae->set_name("sae.train");
    sae->set_description("trains a sparse autoencoder");
    auto* p = sae->add_params();
    p->set_name("d_model");
    p->set_type("int");
    p->set_default_value("64");
    p->set_has_min(true);
    p->set_min(1);
    p->set_has_max(true);
    p->set_max(65536);
    p->set_help("width of the activations");
    p = sae->add_params();
    p->set_name("architecture");
    p->set_type("string");
    p->set_default_value("topk");
    p->add_choices("topk");
    p->add_choices("relu");
    p->set_help("encoder nonlinearity");
    sae->add_result_fields("fvu");
    sae->add_artifacts("sae.safetensors");
  }

  std::mutex mu;
  // Configuration.
  v1::ListJobKindsResponse kinds;
  std::vector<v1::Job> jobs;
  int page_cap = 2;
  std::vector<v1::JobEvent> events;
  int watch_break_after = -1;  // first WatchJob: send this many events, then fail
  grpc::StatusCode watch_break_code = grpc::StatusCode::UNAVAILABLE;
  v1::JobResult result;
  std::map<std::string, std::string> artifact_data;
  int read_break_after = -1;  // first ReadArtifact: send this many bytes, then UNAVAILABLE
  std::string corrupt_artifact;  // serve this name with a flipped byte
  grpc::Status unary_status = grpc::Status::OK;  // forced failure of every unary call
  // Records.
  std::vector<std::string> authorization;
  std::vector<v1::SubmitJobRequest> submits;
  std::vector<v1::ListJobsRequest> lists;
  std::vector<v1::WatchJobRequest> watches;
  std::vector<v1::ReadArtifactRequest> reads;
  v1::DatasetHeader upload_header;
  std::string upload_data;
  int upload_chunks = 0;

  void Record(grpc::ServerContext* c) {
    std::lock_guard<std::mutex> l(mu);
    auto it = c->client_metadata().find("authorization");
    authorization.push_back(it == c->client_metadata().end()
                                ? "<none>"
                                : std::string(it->second.data(), it->second.size()));
  }

  grpc::Status SubmitJob(grpc::ServerContext* c, const v1::SubmitJobRequest* req,
                         v1::Job* job) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    std::lock_guard<std::mutex> l(mu);
    submits.push_back(*req);
    job->set_id("j-1");
    job->set_kind(req->spec().has_sae_train() ? "sae.train" : "noop");
    job->set_state(v1::QUEUED);
    *job->mutable_spec() = req->spec();
    return grpc::Status::OK;
  }

  grpc::Status GetJob(grpc::ServerContext* c, const v1::GetJobRequest* req, v1::Job* job) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    for (const auto& j : jobs) {
      if (j.id() == req->id()) {
        *job = j;
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "job '" + req->id() + "' not found");
  }

  grpc::Status ListJobs(grpc::ServerContext* c, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    std::lock_guard<std::mutex> l(mu);
    lists.push_back(*req);
    size_t start = req->page_token().empty() ? 0 : std::stoul(req->page_token());
    size_t n = std::min<size_t>(std::min(req->page_size(), page_cap), jobs.size() - start);
    for (size_t i = start; i < start + n; ++i) *resp->add_jobs() = jobs[i];
    if (start + n < jobs.size()) resp->set_next_page_token(std::to_string(start + n));
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext* c, const v1::CancelJobRequest* req,
                         v1::Job* job) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    job->set_id(req->id());
    job->set_state(v1::CANCELLED);
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext* c, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* w) override {
    Record(c);
    int limit;
    {
      std::lock_guard<std::mutex> l(mu);
      watches.push_back(*req);
      limit = watches.size() == 1 ? watch_break_after : -1;
    }
    int sent = 0;
    for (const auto& e : events) {
      if (e.seq() <= req->after_seq()) continue;
      if (limit >= 0 && sent == limit) return grpc::Status(watch_break_code, "server restarting");
      w->Write(e);
      ++sent;
    }
    if (limit >= 0 && sent >= limit) return grpc::Status(watch_break_code, "server restarting");
    return grpc::Status::OK;
  }

  grpc::Status GetResult(grpc::ServerContext* c, const v1::GetResultRequest* req,
                         v1::JobResult* r) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    if (req->id() != result.job_id()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
    *r = result;
    return grpc::Status::OK;
  }

  grpc::Status ReadArtifact(grpc::ServerContext* c, const v1::ReadArtifactRequest* req,
                            grpc::ServerWriter<v1::ArtifactChunk>* w) override {
    Record(c);
    int limit;
    {
      std::lock_guard<std::mutex> l(mu);
      reads.push_back(*req);
      limit = reads.size() == 1 ? read_break_after : -1;
    }
    auto it = artifact_data.find(req->name());
    if (it == artifact_data.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no artifact");
    std::string data = it->second;
    if (req->name() == corrupt_artifact) data[0] ^= 1;
    int64_t pos = req->offset(), sent = 0;
    bool first = true;
    while (pos < static_cast<int64_t>(data.size())) {
      if (limit >= 0 && sent >= limit) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "reset");
      v1::ArtifactChunk chunk;
      chunk.set_offset(pos);
      size_t n = std::min<size_t>(3, data.size() - pos);
      chunk.set_data(data.substr(pos, n));
      if (first) chunk.set_total_size(data.size());
      first = false;
      w->Write(chunk);
      pos += n;
      sent += n;
    }
    return grpc::Status::OK;
  }

  grpc::Status UploadDataset(grpc::ServerContext* c, grpc::ServerReader<v1::UploadDatasetRequest>* r,
                             v1::Dataset* ds) override {
    Record(c);
    v1::UploadDatasetRequest msg;
    std::lock_guard<std::mutex> l(mu);
    if (!r->Read(&msg) || !msg.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "header first");
    }
    upload_header = msg.header();
    while (r->Read(&msg)) {
      if (!msg.has_chunk() && msg.part_case() != v1::UploadDatasetRequest::kChunk) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chunk expected");
      }
      upload_data += msg.chunk();
      ++upload_chunks;
    }
    if (Sha256Hex(upload_data) != upload_header.sha256()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "sha256 mismatch");
    }
    ds->set_id("ds-7");
    ds->set_name(upload_header.name());
    ds->set_size(upload_data.size());
    ds->set_sha256(upload_header.sha256());
    return grpc::Status::OK;
  }

  grpc::Status ListJobKinds(grpc::ServerContext* c, const v1::ListJobKindsRequest* req,
                            v1::ListJobKindsResponse* resp) override {
    Record(c);
    if (!unary_status.ok()) return unary_status;
    for (const auto& k : kinds.kinds()) {
      if (req->kind().empty() || req->kind() == k.name()) *resp->add_kinds() = k;
    }
    if (resp->kinds_size() == 0) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such kind");
    return grpc::Status::OK;
  }
};

v1::JobEvent StateEvent(int64_t seq, v1::JobState s, int attempt, const std::string& msg = "") {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_seq(seq);
  e.set_attempt(attempt);
  e.mutable_time()->set_seconds(1000 + seq);
  e.mutable_state()->set_state(s);
  e.mutable_state()->set_message(msg);
  return e;
}

v1::JobEvent ProgressEvent(int64_t seq, int64_t step, int64_t total) {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_seq(seq);
  e.set_attempt(1);
  e.mutable_time()->set_seconds(1000 + seq);
  e.mutable_progress()->set_step(step);
  e.mutable_progress()->set_total(total);
  return e;
}

v1::JobEvent MetricsEvent(int64_t seq, int64_t step, std::map<std::string, double> values) {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_seq(seq);
  e.set_attempt(1);
  e.mutable_metrics()->set_step(step);
  for (const auto& [k, v] : values) (*e.mutable_metrics()->mutable_values())[k] = v;
  return e;
}

v1::JobEvent LogEvent(int64_t seq, const std::string& text) {
  v1::JobEvent e;
  e.set_job_id("j-1");
  e.set_seq(seq);
  e.set_attempt(1);
  e.mutable_log()->set_text(text);
  return e;
}

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    stub_ = v1::JobService::NewStub(channel_);
    ctx_.stub = stub_.get();
    ctx_.out = &out_;
    ctx_.err = &err_;
    ctx_.server = "in-process";
    ctx_.token = "s3cret";
    ctx_.now = [] { return absl::FromUnixSeconds(2000); };
    ctx_.sleep = [this](absl::Duration d) { sleeps_.push_back(d); };

    fake_.result.set_job_id("j-1");
    fake_.result.set_state(v1::SUCCEEDED);
    fake_.result.set_attempt(1);
    (*fake_.result.mutable_metrics())["fvu"] = 0.0123;
    tmp_ = fs::temp_directory_path() /
           absl::StrCat("loupe_cli_test_", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                        "_", getpid());
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    server_->Shutdown();
    fs::remove_all(tmp_);
  }

  int Run(const std::function<int()>& f) { return RunGuarded(ctx_, f); }

  void AddArtifact(const std::string& name, const std::string& data, bool with_sha = true) {
    fake_.artifact_data[name] = data;
    auto* a = fake_.result.add_artifacts();
    a->set_name(name);
    a->set_size(data.size());
    if (with_sha) a->set_sha256(Sha256Hex(data));
    a->set_media_type("application/octet-stream");
  }

  void WriteFile(const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary) << data;
  }
  std::string ReadFile(const fs::path& p) { return *ReadFileToString(p.string()); }

  FakeJobService fake_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::ostringstream out_, err_;
  Context ctx_;
  std::vector<absl::Duration> sleeps_;
  fs::path tmp_;
};

// ---- submit ----------------------------------------------------------------

TEST_F(CommandsTest, SubmitSendsTheSpecAndTheToken) {
  SubmitFlags f;
  f.kind = "sae.train";
  f.params = {"d_model=64"};
  f.priority = 2;
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitOk);
  ASSERT_EQ(fake_.submits.size(), 1u);
  EXPECT_EQ(fake_.submits[0].spec().sae_train().d_model(), 64);
  EXPECT_EQ(fake_.submits[0].spec().priority(), 2);
  EXPECT_EQ(out_.str(), "submitted job j-1 (sae.train)\n");
  EXPECT_THAT(fake_.authorization, ::testing::Each(std::string("Bearer s3cret")));
}

TEST_F(CommandsTest, SubmitJsonPrintsTheJob) {
  ctx_.json = true;
  SubmitFlags f;
  f.kind = "noop";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitOk);
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["id"], "j-1");
  EXPECT_EQ(j["state"], "QUEUED");
  EXPECT_TRUE(j.contains("progress_step"));  // proto names, defaults printed
}

TEST_F(CommandsTest, MisspelledParamIsRefusedBeforeSubmitting) {
  SubmitFlags f;
  f.kind = "sae.train";
  f.params = {"d_modle=64"};
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitUsage);
  EXPECT_TRUE(fake_.submits.empty());
  EXPECT_EQ(err_.str(), "loupe: error: unknown parameter 'd_modle'; did you mean 'd_model'?\n");
}

TEST_F(CommandsTest, UnknownKindListsTheServersKinds) {
  SubmitFlags f;
  f.kind = "sae.trian";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitUsage);
  EXPECT_TRUE(fake_.submits.empty());
  EXPECT_EQ(err_.str(),
            "loupe: error: unknown job kind 'sae.trian'; did you mean 'sae.train'? "
            "(known kinds: noop, sae.train)\n");
}

TEST_F(CommandsTest, UnknownKindWithTheServerDownIsStillAUsageError) {
  fake_.unary_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  SubmitFlags f;
  f.kind = "sae.trian";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("unknown job kind 'sae.trian'"));
}

TEST_F(CommandsTest, KindTheServerHasButThisClientLacks) {
  fake_.kinds.add_kinds()->set_name("probe.fit");
  SubmitFlags f;
  f.kind = "probe.fit";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("update the client"));
}

TEST_F(CommandsTest, SpecFileFromStdin) {
  std::istringstream in(R"({"saeTrain": {"dModel": 32}, "priority": 3})");
  ctx_.in = &in;
  SubmitFlags f;
  f.spec_file = "-";
  f.params = {"k=4"};
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitOk);
  ASSERT_EQ(fake_.submits.size(), 1u);
  EXPECT_EQ(fake_.submits[0].spec().sae_train().d_model(), 32);
  EXPECT_EQ(fake_.submits[0].spec().sae_train().k(), 4);
  EXPECT_EQ(fake_.submits[0].spec().priority(), 3);
}

TEST_F(CommandsTest, MissingSpecFileIsAUsageError) {
  SubmitFlags f;
  f.spec_file = (tmp_ / "nope.json").string();
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("nope.json"));
}

TEST_F(CommandsTest, ServerRefusalMapsToItsExitCode) {
  fake_.unary_status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "sae.train parameter 'k': too big");
  SubmitFlags f;
  f.kind = "noop";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitInvalidArgument);
  EXPECT_EQ(err_.str(), "loupe: error: submit job: sae.train parameter 'k': too big\n");

  err_.str("");
  fake_.unary_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  ctx_.token = "";
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitAuth);
  EXPECT_THAT(err_.str(), HasSubstr("LOUPE_TOKEN"));
  EXPECT_EQ(fake_.authorization.back(), "<none>");
}

TEST_F(CommandsTest, SubmitWatchEndsWithTheJobsExitCode) {
  fake_.events = {StateEvent(1, v1::QUEUED, 0), StateEvent(2, v1::RUNNING, 1),
                  StateEvent(3, v1::FAILED, 1, "out of memory")};
  fake_.result.set_state(v1::FAILED);
  fake_.result.set_error("out of memory");
  SubmitFlags f;
  f.kind = "noop";
  f.watch = true;
  EXPECT_EQ(Run([&] { return RunSubmit(ctx_, f); }), kExitJobFailed);
  EXPECT_THAT(out_.str(), HasSubstr("submitted job j-1 (noop)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("state: FAILED (attempt 1): out of memory\n"));
  EXPECT_THAT(out_.str(), HasSubstr("job j-1 FAILED (attempt 1): out of memory\n"));
}

// ---- watch -----------------------------------------------------------------

TEST_F(CommandsTest, WatchPrintsStatesLogsAndTheFinalMetrics) {
  fake_.events = {StateEvent(1, v1::QUEUED, 0), StateEvent(2, v1::RUNNING, 1),
                  ProgressEvent(3, 10, 100), MetricsEvent(4, 10, {{"fvu", 0.5}}),
                  LogEvent(5, "hello from the worker"), ProgressEvent(6, 100, 100),
                  StateEvent(7, v1::SUCCEEDED, 1)};
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitOk);
  const std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("state: QUEUED\n"));
  EXPECT_THAT(out, HasSubstr("state: RUNNING (attempt 1)\n"));
  EXPECT_THAT(out, HasSubstr("10/100 10%"));  // the first progress line (not a TTY)
  EXPECT_THAT(out, HasSubstr("hello from the worker\n"));
  EXPECT_THAT(out, HasSubstr("job j-1 SUCCEEDED (attempt 1)\nmetrics:\n  fvu  0.0123\n"));
  EXPECT_THAT(out, Not(HasSubstr("\r")));
  EXPECT_EQ(fake_.watches.size(), 1u);
}

TEST_F(CommandsTest, WatchOnATerminalRedrawsTheBar) {
  ctx_.tty = true;
  fake_.events = {StateEvent(1, v1::RUNNING, 1), ProgressEvent(2, 50, 100),
                  MetricsEvent(3, 50, {{"l0", 31.8}}), StateEvent(4, v1::SUCCEEDED, 1)};
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\r\x1b[K["));
  EXPECT_THAT(out_.str(), HasSubstr("50/100 50% l0=31.8"));
}

TEST_F(CommandsTest, WatchReconnectsAfterTheLastSeenSeq) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1), ProgressEvent(2, 1, 3), ProgressEvent(3, 2, 3),
                  ProgressEvent(4, 3, 3), StateEvent(5, v1::CANCELLED, 1, "by alice")};
  fake_.watch_break_after = 3;
  ctx_.json = true;
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitJobCancelled);
  ASSERT_EQ(fake_.watches.size(), 2u);
  EXPECT_EQ(fake_.watches[0].after_seq(), 0);
  EXPECT_EQ(fake_.watches[1].after_seq(), 3);
  ASSERT_EQ(sleeps_.size(), 1u);
  EXPECT_THAT(err_.str(), HasSubstr("reconnecting"));
  // JSON Lines: one event per line, each seq once.
  std::istringstream lines(out_.str());
  std::string line;
  int64_t expect = 1;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["seq"], std::to_string(expect++));
    EXPECT_EQ(j["job_id"], "j-1");
  }
  EXPECT_EQ(expect, 6);
}

TEST_F(CommandsTest, WatchResumesAfterAServerSideCancel) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1), StateEvent(2, v1::SUCCEEDED, 1)};
  fake_.watch_break_after = 1;
  fake_.watch_break_code = grpc::StatusCode::CANCELLED;
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitOk);
  ASSERT_EQ(fake_.watches.size(), 2u);
  EXPECT_EQ(fake_.watches[1].after_seq(), 1);
}

TEST_F(CommandsTest, WatchDoesNotReconnectOnceTheFinalStateArrived) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1), StateEvent(2, v1::SUCCEEDED, 1)};
  fake_.watch_break_after = 2;  // the stream breaks right after the final state
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitOk);
  EXPECT_EQ(fake_.watches.size(), 1u);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(CommandsTest, WatchOtherStreamErrorsAreNotRetried) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1), StateEvent(2, v1::SUCCEEDED, 1)};
  fake_.watch_break_after = 1;
  fake_.watch_break_code = grpc::StatusCode::PERMISSION_DENIED;
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitAuth);
  EXPECT_EQ(fake_.watches.size(), 1u);
}

TEST_F(CommandsTest, WatchGivesUpAfterRepeatedFailures) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1)};  // never ends
  // The fake ends the stream OK without a final state; GetJob says RUNNING.
  v1::Job running;
  running.set_id("j-1");
  running.set_state(v1::RUNNING);
  fake_.jobs = {running};
  ctx_.max_reconnects = 2;
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitUnreachable);
  EXPECT_EQ(fake_.watches.size(), 3u);
  EXPECT_EQ(sleeps_.size(), 2u);
  EXPECT_EQ(sleeps_[1], 2 * sleeps_[0]);  // backoff doubles
}

TEST_F(CommandsTest, WatchAFinishedJobWhoseStreamLacksTheFinalState) {
  fake_.events = {StateEvent(1, v1::RUNNING, 1)};
  v1::Job done;
  done.set_id("j-1");
  done.set_state(v1::SUCCEEDED);
  fake_.jobs = {done};
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "j-1"); }), kExitOk);
}

TEST_F(CommandsTest, WatchUnknownJob) {
  // The fake streams nothing for it; GetJob then says NOT_FOUND.
  EXPECT_EQ(Run([&] { return RunWatch(ctx_, "nope"); }), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("job 'nope' not found"));
}

// ---- get / list / cancel ---------------------------------------------------

TEST_F(CommandsTest, GetShowsTheJob) {
  v1::Job j;
  j.set_id("j-9");
  j.set_kind("sae.train");
  j.set_state(v1::RUNNING);
  j.set_attempt(1);
  j.set_owner("alice");
  j.mutable_created_at()->set_seconds(1900);
  j.set_progress_step(5);
  j.set_progress_total(10);
  j.mutable_spec()->mutable_sae_train()->set_d_model(64);
  j.mutable_spec()->set_max_attempts(3);
  (*j.mutable_spec()->mutable_labels())["team"] = "interp";
  fake_.jobs = {j};
  EXPECT_EQ(Run([&] { return RunGet(ctx_, "j-9"); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("state:     RUNNING (attempt 1 of 3)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("params:    d_model=64\n"));
  EXPECT_THAT(out_.str(), HasSubstr("progress:  5/10 50%\n"));
  EXPECT_THAT(out_.str(), HasSubstr("labels:    team=interp\n"));
  EXPECT_THAT(out_.str(), HasSubstr("(1m ago)"));
}

TEST_F(CommandsTest, GetMissingJobIsNotFound) {
  EXPECT_EQ(Run([&] { return RunGet(ctx_, "nope"); }), kExitNotFound);
  EXPECT_EQ(err_.str(), "loupe: error: get job nope: job 'nope' not found\n");
}

TEST_F(CommandsTest, ListFollowsPagesUpToTheLimit) {
  for (int i = 0; i < 5; ++i) {
    v1::Job j;
    j.set_id(absl::StrCat("j-", i));
    j.set_kind("noop");
    j.set_state(v1::SUCCEEDED);
    j.set_attempt(1);
    j.set_owner("bob");
    j.mutable_created_at()->set_seconds(2000 - 120);
    fake_.jobs.push_back(j);
  }
  ListFlags f;
  f.limit = 4;
  f.state = "succeeded";
  EXPECT_EQ(Run([&] { return RunList(ctx_, f); }), kExitOk);
  ASSERT_EQ(fake_.lists.size(), 2u);
  EXPECT_EQ(fake_.lists[0].state(), v1::SUCCEEDED);
  EXPECT_EQ(fake_.lists[1].page_token(), "2");
  EXPECT_EQ(out_.str(),
            "ID   KIND  STATE      ATTEMPT  PROGRESS  AGE  OWNER\n"
            "j-0  noop  SUCCEEDED  1        -         2m   bob\n"
            "j-1  noop  SUCCEEDED  1        -         2m   bob\n"
            "j-2  noop  SUCCEEDED  1        -         2m   bob\n"
            "j-3  noop  SUCCEEDED  1        -         2m   bob\n");
  EXPECT_THAT(err_.str(), HasSubstr("--limit"));

  out_.str("");
  ctx_.json = true;
  f.limit = 50;
  EXPECT_EQ(Run([&] { return RunList(ctx_, f); }), kExitOk);
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["jobs"].size(), 5u);
  EXPECT_EQ(j["next_page_token"], "");
}

TEST_F(CommandsTest, ListBadStateIsAUsageError) {
  ListFlags f;
  f.state = "runing";
  EXPECT_EQ(Run([&] { return RunList(ctx_, f); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("did you mean 'running'?"));
  EXPECT_TRUE(fake_.lists.empty());
}

TEST_F(CommandsTest, Cancel) {
  EXPECT_EQ(Run([&] { return RunCancel(ctx_, "j-3"); }), kExitOk);
  EXPECT_EQ(out_.str(), "cancelled job j-3\n");
}

// ---- result / artifacts / download -----------------------------------------

TEST_F(CommandsTest, ResultAndArtifacts) {
  AddArtifact("sae.safetensors", "0123456789");
  EXPECT_EQ(Run([&] { return RunResult(ctx_, "j-1"); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("job j-1: SUCCEEDED (attempt 1)\nmetrics:\n  fvu  0.0123\n"));
  EXPECT_THAT(out_.str(), HasSubstr("sae.safetensors  10 B"));
  out_.str("");
  EXPECT_EQ(Run([&] { return RunArtifacts(ctx_, "j-1"); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("NAME             SIZE  SHA256"));
  out_.str("");
  ctx_.json = true;
  EXPECT_EQ(Run([&] { return RunArtifacts(ctx_, "j-1"); }), kExitOk);
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["artifacts"][0]["name"], "sae.safetensors");
  EXPECT_EQ(j["artifacts"][0]["size"], "10");
}

TEST_F(CommandsTest, DownloadVerifiesAndRenames) {
  const std::string data = "the quick brown fox jumps";
  AddArtifact("sae.safetensors", data);
  DownloadFlags f{"j-1", "sae.safetensors", (tmp_ / "out.bin").string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitOk) << err_.str();
  EXPECT_EQ(ReadFile(tmp_ / "out.bin"), data);
  EXPECT_FALSE(fs::exists(tmp_ / "out.bin.part"));
  EXPECT_THAT(out_.str(), HasSubstr("sha256 verified"));
}

TEST_F(CommandsTest, DownloadResumesFromAPartFile) {
  const std::string data = "the quick brown fox jumps";
  AddArtifact("sae.safetensors", data);
  WriteFile(tmp_ / "out.bin.part", data.substr(0, 7));
  DownloadFlags f{"j-1", "sae.safetensors", (tmp_ / "out.bin").string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitOk) << err_.str();
  ASSERT_EQ(fake_.reads.size(), 1u);
  EXPECT_EQ(fake_.reads[0].offset(), 7);
  EXPECT_EQ(ReadFile(tmp_ / "out.bin"), data);
}

TEST_F(CommandsTest, DownloadIntoADirectoryAndAfterAReset) {
  const std::string data = "0123456789abcdefghij";
  AddArtifact("sae.safetensors", data);
  fake_.read_break_after = 6;
  DownloadFlags f{"j-1", "sae.safetensors", tmp_.string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitOk) << err_.str();
  ASSERT_EQ(fake_.reads.size(), 2u);
  EXPECT_EQ(fake_.reads[1].offset(), 6);
  EXPECT_EQ(ReadFile(tmp_ / "sae.safetensors"), data);
}

TEST_F(CommandsTest, DownloadChecksumMismatchIsALocalIoError) {
  AddArtifact("sae.safetensors", "abcdef");
  fake_.corrupt_artifact = "sae.safetensors";
  DownloadFlags f{"j-1", "sae.safetensors", (tmp_ / "out.bin").string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitLocalIo);
  EXPECT_THAT(err_.str(), HasSubstr("checksum mismatch"));
  EXPECT_FALSE(fs::exists(tmp_ / "out.bin"));
  EXPECT_FALSE(fs::exists(tmp_ / "out.bin.part"));
}

TEST_F(CommandsTest, DownloadUnknownArtifactSuggests) {
  AddArtifact("sae.safetensors", "abc");
  DownloadFlags f{"j-1", "sae.safetensor", (tmp_ / "x").string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("did you mean 'sae.safetensors'?"));
}

TEST_F(CommandsTest, DownloadCompletePartFileSkipsTheServer) {
  AddArtifact("a.txt", "hello");
  WriteFile(tmp_ / "a.txt.part", "hello");
  DownloadFlags f{"j-1", "a.txt", (tmp_ / "a.txt").string()};
  EXPECT_EQ(Run([&] { return RunDownload(ctx_, f); }), kExitOk) << err_.str();
  EXPECT_TRUE(fake_.reads.empty());
  EXPECT_EQ(ReadFile(tmp_ / "a.txt"), "hello");
}

// ---- upload ----------------------------------------------------------------

TEST_F(CommandsTest, UploadSendsHeaderThenMiBChunks) {
  std::string data(2 * 1024 * 1024 + 17, 'x');
  for (size_t i = 0; i < data.size(); i += 97) data[i] = static_cast<char>(i);
  WriteFile(tmp_ / "acts.npy", data);
  UploadFlags f{(tmp_ / "acts.npy").string(), ""};
  EXPECT_EQ(Run([&] { return RunUpload(ctx_, f); }), kExitOk) << err_.str();
  EXPECT_EQ(fake_.upload_header.name(), "acts.npy");
  EXPECT_EQ(fake_.upload_header.size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(fake_.upload_header.sha256(), Sha256Hex(data));
  EXPECT_EQ(fake_.upload_header.media_type(), "application/x-npy");
  EXPECT_EQ(fake_.upload_chunks, 3);
  EXPECT_EQ(fake_.upload_data, data);
  EXPECT_THAT(out_.str(), HasSubstr("as dataset ds-7"));
  EXPECT_THAT(out_.str(), HasSubstr("use it as: dataset:ds-7\n"));
}

TEST_F(CommandsTest, UploadJsonAndName) {
  WriteFile(tmp_ / "x.csv", "a,b\n1,2\n");
  ctx_.json = true;
  UploadFlags f{(tmp_ / "x.csv").string(), "my-table"};
  EXPECT_EQ(Run([&] { return RunUpload(ctx_, f); }), kExitOk) << err_.str();
  auto j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["id"], "ds-7");
  EXPECT_EQ(j["name"], "my-table");
  EXPECT_EQ(j["deduplicated"], false);
}

TEST_F(CommandsTest, UploadMissingFileIsALocalIoError) {
  UploadFlags f{(tmp_ / "missing.bin").string(), ""};
  EXPECT_EQ(Run([&] { return RunUpload(ctx_, f); }), kExitLocalIo);
  EXPECT_THAT(err_.str(), HasSubstr("no such file"));
}

// ---- kinds -----------------------------------------------------------------

TEST_F(CommandsTest, KindsTableAndDetails) {
  EXPECT_EQ(Run([&] { return RunKinds(ctx_, ""); }), kExitOk);
  EXPECT_EQ(out_.str(),
            "KIND       DESCRIPTION\n"
            "noop       does nothing\n"
            "sae.train  trains a sparse autoencoder\n");
  out_.str("");
  EXPECT_EQ(Run([&] { return RunKinds(ctx_, "sae.train"); }), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("NAME          TYPE    DEFAULT  BOUNDS      CHOICES    HELP\n"));
  EXPECT_THAT(out_.str(), HasSubstr("d_model       int     64       [1, 65536]  -          width of the activations\n"));
  EXPECT_THAT(out_.str(), HasSubstr("architecture  string  topk     -           topk|relu  encoder nonlinearity\n"));
  EXPECT_THAT(out_.str(), HasSubstr("result fields: fvu\nartifacts: sae.safetensors\n"));
}

TEST_F(CommandsTest, KindsUnknownSuggests) {
  EXPECT_EQ(Run([&] { return RunKinds(ctx_, "sae.trian"); }), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("did you mean 'sae.train'?"));
}

// ---- unreachable server ----------------------------------------------------

TEST(Unreachable, ClosedPortGivesExitCode4) {
  auto stub = v1::JobService::NewStub(MakeChannel("127.0.0.1:1"));
  std::ostringstream out, err;
  Context ctx;
  ctx.stub = stub.get();
  ctx.out = &out;
  ctx.err = &err;
  ctx.server = "127.0.0.1:1";
  ctx.call_timeout = absl::Seconds(10);
  EXPECT_EQ(RunGuarded(ctx, [&] { return RunGet(ctx, "j-1"); }), kExitUnreachable);
  EXPECT_THAT(err.str(), HasSubstr("loupe: error: get job j-1: cannot reach the Loupe server at 127.0.0.1:1"));
  err.str("");
  EXPECT_EQ(RunGuarded(ctx, [&] { return RunWatch(ctx, "j-1"); }), kExitUnreachable);
}

// ---- RunCli ----------------------------------------------------------------

class CliTest : public CommandsTest {
 protected:
  int Cli(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), "loupe");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    Environment e;
    e.getenv = [env](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    e.out = &out_;
    e.err = &err_;
    e.make_stub = [this](const std::string& address) {
      addresses_.push_back(address);
      return std::unique_ptr<v1::JobService::StubInterface>(v1::JobService::NewStub(channel_));
    };
    return RunCli(static_cast<int>(argv.size()), argv.data(), e);
  }
  std::vector<std::string> addresses_;
};

TEST_F(CliTest, SubmitWithRepeatedFlagsAndGlobalFlagsAfterTheCommand) {
  EXPECT_EQ(Cli({"submit", "sae.train", "--param", "d_model=64", "-p", "k=8", "--label", "a=1",
                 "--label", "b=2", "--time-limit", "10m", "--priority", "4", "--json"},
                {{"LOUPE_TOKEN", "tok"}}),
            kExitOk)
      << err_.str();
  ASSERT_EQ(fake_.submits.size(), 1u);
  const auto& spec = fake_.submits[0].spec();
  EXPECT_EQ(spec.sae_train().d_model(), 64);
  EXPECT_EQ(spec.sae_train().k(), 8);
  EXPECT_EQ(spec.labels().size(), 2u);
  EXPECT_EQ(spec.time_limit().seconds(), 600);
  EXPECT_EQ(spec.priority(), 4);
  EXPECT_EQ(fake_.authorization.back(), "Bearer tok");
  EXPECT_EQ(nlohmann::json::parse(out_.str())["id"], "j-1");
  EXPECT_EQ(addresses_, std::vector<std::string>{"127.0.0.1:7733"});
}

TEST_F(CliTest, ServerAndTokenFlagsBeatTheEnvironment) {
  EXPECT_EQ(Cli({"--server", "gpu-box", "--token", "flag", "cancel", "j-1"},
                {{"LOUPE_SERVER", "env:1"}, {"LOUPE_TOKEN", "env"}}),
            kExitOk);
  EXPECT_EQ(addresses_, std::vector<std::string>{"gpu-box:7733"});
  EXPECT_EQ(fake_.authorization.back(), "Bearer flag");
  EXPECT_EQ(Cli({"cancel", "j-1"}, {{"LOUPE_SERVER", "env:1"}}), kExitOk);
  EXPECT_EQ(addresses_.back(), "env:1");
}

TEST_F(CliTest, UsageErrorsExitWith2) {
  EXPECT_EQ(Cli({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("loupe: error: "));
  EXPECT_EQ(Cli({"--server", "h", "subimt", "noop"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("loupe: error: unknown command 'subimt'; did you mean 'submit'?"));
  EXPECT_EQ(Cli({"get"}), kExitUsage);
  EXPECT_EQ(Cli({"submit", "noop", "--priority", "high"}), kExitUsage);
  EXPECT_EQ(Cli({"submit"}), kExitUsage);
  EXPECT_EQ(Cli({"submit", "noop", "--time-limit", "soon"}), kExitUsage);
  EXPECT_EQ(Cli({"submit", "sae.train", "--param", "d_modle=64"}), kExitUsage);
  EXPECT_EQ(Cli({"list", "--limit", "0"}), kExitUsage);
  EXPECT_TRUE(fake_.submits.empty());
}

TEST_F(CliTest, HelpExitsWith0) {
  EXPECT_EQ(Cli({"--help"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("submit"));
  out_.str("");
  EXPECT_EQ(Cli({"submit", "--help"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("--idempotency-key"));
}

TEST_F(CliTest, DownloadAndKindsThroughTheCommandLine) {
  AddArtifact("sae.safetensors", "payload");
  const std::string out = (tmp_ / "w.st").string();
  EXPECT_EQ(Cli({"download", "j-1", "sae.safetensors", "-o", out}), kExitOk) << err_.str();
  EXPECT_EQ(ReadFile(out), "payload");
  EXPECT_EQ(Cli({"kinds", "noop"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("noop: does nothing\n"));
}

}  // namespace
}  // namespace loupe::cli
