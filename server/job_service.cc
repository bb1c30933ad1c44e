#include "absl/strings/string_view.h"
#include "server/job_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/status_util.h"
#include "server/store/blob_store.h"

namespace loupe {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;
using loupe::v1::JobEvent;

namespace {

constexpr int64_t kArtifactChunk = 256 * 1024;
constexpr int64_t kMaxDatasetBytes = int64_t{64} << 30;
constexpr int kEventPage = 4096;

ServerUnaryReactor* Done(CallbackServerContext* ctx, const absl::Status& s) {
  ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(s));
  return r;
}

bool IsTerminalEvent(const JobEvent& e) {
  if (!e.has_state()) return false;
  auto s = e.state().state();
  return s == loupe::v1::SUCCEEDED || s == loupe::v1::FAILED || s == loupe::v1::CANCELLED;
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Streams a job's events: first the stored ones after the client's last
// sequence number, then live ones, until the job ends or the client leaves.
class WatchReactor : public grpc::ServerWriteReactor<JobEvent> {
 public:
  // `ended` says the job had already ended before the watch began: once its
  // backlog is sent (possibly nothing, if the client saw it all) the stream ends.
  WatchReactor(JobManager* manager, std::string job_id, int64_t after_seq, bool ended)
      : manager_(manager), job_id_(std::move(job_id)), last_seq_(after_seq) {
    // Subscribe before reading the backlog, so nothing committed in between
    // is missed; duplicates are dropped by sequence number.
    {
      std::lock_guard<std::mutex> l(mu_);
      backfilling_ = true;
    }
    sub_ = manager_->hub().Subscribe(job_id_, [this](const JobEvent& e) { OnLive(e); });
    absl::Status s = Backfill();
    std::lock_guard<std::mutex> l(mu_);
    backfilling_ = false;
    if (!s.ok()) {
      FinishLocked(ToGrpcStatus(s));
      return;
    }
    for (auto& e : live_during_backfill_) Enqueue(std::move(e));
    live_during_backfill_.clear();
    if (ended && queue_.empty()) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    if (sent_terminal_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> l(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    manager_->hub().Unsubscribe(sub_);
    delete this;
  }

 private:
  absl::Status Backfill() {
    int64_t from = last_seq_;
    while (true) {
      absl::StatusOr<std::vector<JobEvent>> page =
          manager_->store().ReadEvents(job_id_, from, kEventPage);
      if (!page.ok()) return page.status();
      std::lock_guard<std::mutex> l(mu_);
      for (auto& e : *page) {
        from = e.seq();
        Enqueue(std::move(e));
      }
      if (static_cast<int>(page->size()) < kEventPage) return absl::OkStatus();
    }
  }

  void OnLive(const JobEvent& e) {
    std::lock_guard<std::mutex> l(mu_);
    if (finished_) return;
    if (backfilling_) {
      live_during_backfill_.push_back(e);
      return;
    }
    Enqueue(e);
    MaybeWriteLocked();
  }

  // Requires mu_.
  void Enqueue(JobEvent e) {
    if (e.seq() <= last_seq_ || queued_terminal_) return;
    last_seq_ = e.seq();
    queued_terminal_ = IsTerminalEvent(e);
    queue_.push_back(std::move(e));
  }

  // Requires mu_.
  void MaybeWriteLocked() {
    if (finished_ || writing_) return;
    if (queue_.empty()) {
      if (sent_terminal_) FinishLocked(grpc::Status::OK);
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    sent_terminal_ = IsTerminalEvent(current_);
    writing_ = true;
    StartWrite(&current_);
  }

  // Requires mu_.
  void FinishLocked(const grpc::Status& s) {
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  JobManager* manager_;
  const std::string job_id_;
  uint64_t sub_ = 0;
  std::mutex mu_;
  int64_t last_seq_;                        // guarded by mu_: highest seq queued
  std::deque<JobEvent> queue_;              // guarded by mu_
  std::vector<JobEvent> live_during_backfill_;  // guarded by mu_
  JobEvent current_;                        // being written
  bool backfilling_ = false;
  bool writing_ = false;
  bool queued_terminal_ = false;
  bool sent_terminal_ = false;
  bool finished_ = false;
};

// Sends [offset, offset+limit) of a stored artifact in chunks.
class ArtifactReactor : public grpc::ServerWriteReactor<loupe::v1::ArtifactChunk> {
 public:
  ArtifactReactor(const std::string& path, int64_t size, int64_t offset, int64_t limit)
      : total_(size), pos_(offset), end_(limit > 0 ? std::min(size, offset + limit) : size) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("artifact blob is missing on the server: ", path)));
      return;
    }
    first_ = true;
    Next();
  }
  ~ArtifactReactor() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    if (pos_ >= end_) {
      Finish(grpc::Status::OK);
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    int64_t n = std::min(kArtifactChunk, end_ - pos_);
    chunk_.Clear();
    chunk_.set_offset(pos_);
    if (first_) {
      chunk_.set_total_size(total_);
      first_ = false;
    }
    std::string* data = chunk_.mutable_data();
    data->resize(static_cast<size_t>(n));
    int64_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, data->data() + got, static_cast<size_t>(n - got), pos_ + got);
      if (r <= 0) {
        Finish(grpc::Status(grpc::StatusCode::DATA_LOSS, "artifact blob is shorter than recorded"));
        return;
      }
      got += r;
    }
    pos_ += n;
    StartWrite(&chunk_);
  }

  int fd_ = -1;
  const int64_t total_;
  int64_t pos_;
  const int64_t end_;
  bool first_ = true;
  loupe::v1::ArtifactChunk chunk_;
};

// Receives a dataset: a header, then chunks; checks size and sha256 before
// anything is registered.
class UploadReactor : public grpc::ServerReadReactor<loupe::v1::UploadDatasetRequest> {
 public:
  UploadReactor(JobManager* manager, store::User user, loupe::v1::Dataset* resp)
      : manager_(manager), user_(std::move(user)), resp_(resp) {
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      End();
      return;
    }
    absl::Status s = Consume();
    if (!s.ok()) {
      Reply(ToGrpcStatus(s));
      return;
    }
    StartRead(&req_);
  }
  void OnDone() override { delete this; }

 private:
  // Drops the partial upload before the client can see the outcome: a client
  // told that its upload failed must find nothing of it left on the server.
  void Reply(const grpc::Status& s) {
    writer_.reset();
    Finish(s);
  }

  absl::Status Consume() {
    if (writer_ == nullptr) {
      if (!req_.has_header()) {
        return absl::InvalidArgumentError("the first upload message must be the header");
      }
      header_ = req_.header();
      if (header_.name().empty() || header_.name().size() > 256) {
        return absl::InvalidArgumentError("header 'name': must be 1-256 characters");
      }
      if (header_.size() < 0 || header_.size() > kMaxDatasetBytes) {
        return absl::InvalidArgumentError(absl::StrCat("header 'size': must be between 0 and ",
                                                       kMaxDatasetBytes, " bytes"));
      }
      if (!IsHex64(header_.sha256())) {
        return absl::InvalidArgumentError("header 'sha256': must be 64 lower-case hex digits");
      }
      auto w = manager_->blobs().NewWriter();
      if (!w.ok()) return w.status();
      writer_ = std::move(*w);
      return absl::OkStatus();
    }
    if (!req_.has_chunk() && !req_.has_header()) return absl::OkStatus();
    if (req_.has_header()) return absl::InvalidArgumentError("header sent twice");
    if (writer_->size() + static_cast<int64_t>(req_.chunk().size()) > header_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upload is larger than the declared size of ", header_.size(), " bytes"));
    }
    return writer_->Append(req_.chunk());
  }

  void End() {
    if (writer_ == nullptr) {
      Reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty upload: no header was sent"));
      return;
    }
    if (writer_->size() != header_.size()) {
      Reply(grpc::Status(grpc::StatusCode::DATA_LOSS,
                         absl::StrCat("truncated upload: received ", writer_->size(), " of ",
                                      header_.size(), " bytes")));
      return;
    }
    absl::StatusOr<store::BlobInfo> blob = writer_->Commit(header_.sha256());
    if (!blob.ok()) {
      Reply(ToGrpcStatus(blob.status()));
      return;
    }
    std::string media = header_.media_type().empty() ? "application/octet-stream"
                                                     : header_.media_type();
    absl::StatusOr<loupe::v1::Dataset> ds = manager_->AddDataset(user_, header_.name(), *blob, media);
    if (ds.ok()) *resp_ = *ds;
    Reply(ToGrpcStatus(ds.status()));
  }

  JobManager* manager_;
  store::User user_;
  loupe::v1::Dataset* resp_;
  loupe::v1::UploadDatasetRequest req_;
  loupe::v1::DatasetHeader header_;
  std::unique_ptr<store::BlobWriter> writer_;
};

template <typename Msg>
class ErrorWriter : public grpc::ServerWriteReactor<Msg> {
 public:
  explicit ErrorWriter(const absl::Status& s) { this->Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

class ErrorReader : public grpc::ServerReadReactor<loupe::v1::UploadDatasetRequest> {
 public:
  explicit ErrorReader(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<store::User> JobServiceImpl::Authenticate(CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  absl::string_view header;
  if (it != md.end()) header = absl::string_view(it->second.data(), it->second.size());
  return auth_->Authenticate(header);
}

ServerUnaryReactor* JobServiceImpl::SubmitJob(CallbackServerContext* ctx,
                                              const loupe::v1::SubmitJobRequest* req,
                                              loupe::v1::Job* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  manager_->Submit(*user, req->spec(), [reactor, resp](absl::StatusOr<loupe::v1::Job> job) {
    if (job.ok()) *resp = std::move(*job);
    reactor->Finish(ToGrpcStatus(job.status()));
  });
  return reactor;
}

ServerUnaryReactor* JobServiceImpl::GetJob(CallbackServerContext* ctx,
                                           const loupe::v1::GetJobRequest* req,
                                           loupe::v1::Job* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  absl::StatusOr<loupe::v1::Job> job = manager_->Get(*user, req->id());
  if (job.ok()) *resp = std::move(*job);
  return Done(ctx, job.status());
}

ServerUnaryReactor* JobServiceImpl::ListJobs(CallbackServerContext* ctx,
                                             const loupe::v1::ListJobsRequest* req,
                                             loupe::v1::ListJobsResponse* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  absl::StatusOr<loupe::v1::ListJobsResponse> r = manager_->List(*user, *req);
  if (r.ok()) *resp = std::move(*r);
  return Done(ctx, r.status());
}

ServerUnaryReactor* JobServiceImpl::CancelJob(CallbackServerContext* ctx,
                                              const loupe::v1::CancelJobRequest* req,
                                              loupe::v1::Job* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  absl::StatusOr<loupe::v1::Job> job = manager_->Cancel(*user, req->id());
  if (job.ok()) *resp = std::move(*job);
  return Done(ctx, job.status());
}

grpc::ServerWriteReactor<JobEvent>* JobServiceImpl::WatchJob(
    CallbackServerContext* ctx, const loupe::v1::WatchJobRequest* req) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return new ErrorWriter<JobEvent>(user.status());
  if (req->after_seq() < 0) {
    return new ErrorWriter<JobEvent>(absl::InvalidArgumentError("'after_seq' must not be negative"));
  }
  absl::StatusOr<loupe::v1::Job> job = manager_->Get(*user, req->id());
  if (!job.ok()) return new ErrorWriter<JobEvent>(job.status());
  const auto s = job->state();
  const bool ended = s == loupe::v1::SUCCEEDED || s == loupe::v1::FAILED || s == loupe::v1::CANCELLED;
  return new WatchReactor(manager_, req->id(), req->after_seq(), ended);
}

ServerUnaryReactor* JobServiceImpl::GetResult(CallbackServerContext* ctx,
                                              const loupe::v1::GetResultRequest* req,
                                              loupe::v1::JobResult* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  absl::StatusOr<loupe::v1::JobResult> r = manager_->Result(*user, req->id());
  if (r.ok()) *resp = std::move(*r);
  return Done(ctx, r.status());
}

grpc::ServerWriteReactor<loupe::v1::ArtifactChunk>* JobServiceImpl::ReadArtifact(
    CallbackServerContext* ctx, const loupe::v1::ReadArtifactRequest* req) {
  using Chunk = loupe::v1::ArtifactChunk;
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return new ErrorWriter<Chunk>(user.status());
  absl::StatusOr<store::ArtifactRecord> a = manager_->Artifact(*user, req->job_id(), req->name());
  if (!a.ok()) return new ErrorWriter<Chunk>(a.status());
  if (req->offset() < 0 || req->offset() > a->artifact.size() || req->limit() < 0) {
    return new ErrorWriter<Chunk>(absl::OutOfRangeError(absl::StrCat(
        "'offset' must be between 0 and the artifact's size (", a->artifact.size(),
        ") and 'limit' must not be negative")));
  }
  return new ArtifactReactor(a->path, a->artifact.size(), req->offset(), req->limit());
}

grpc::ServerReadReactor<loupe::v1::UploadDatasetRequest>* JobServiceImpl::UploadDataset(
    CallbackServerContext* ctx, loupe::v1::Dataset* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return new ErrorReader(user.status());
  return new UploadReactor(manager_, *user, resp);
}

ServerUnaryReactor* JobServiceImpl::ListJobKinds(CallbackServerContext* ctx,
                                                 const loupe::v1::ListJobKindsRequest* req,
                                                 loupe::v1::ListJobKindsResponse* resp) {
  absl::StatusOr<store::User> user = Authenticate(ctx);
  if (!user.ok()) return Done(ctx, user.status());
  absl::StatusOr<loupe::v1::ListJobKindsResponse> r = manager_->Kinds(req->kind());
  if (r.ok()) *resp = std::move(*r);
  return Done(ctx, r.status());
}

}  // namespace loupe
