#include "absl/strings/string_view.h"
#include "server/job_manager.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "server/auth.h"
#include "server/run_context.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;
using loupe::v1::Job;
using loupe::v1::JobSpec;

namespace {

constexpr int kMaxLabels = 32;
constexpr size_t kMaxLabelBytes = 256;
constexpr size_t kMaxIdempotencyKey = 128;
constexpr int kMaxPriority = 1000;

bool IsTerminal(loupe::v1::JobState s) {
  return s == loupe::v1::SUCCEEDED || s == loupe::v1::FAILED || s == loupe::v1::CANCELLED;
}

absl::Status CheckSpecFields(const JobSpec& spec) {
  auto bad = [](absl::string_view field, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("'", field, "': ", what));
  };
  if (spec.priority() < -kMaxPriority || spec.priority() > kMaxPriority) {
    return bad("priority", absl::StrCat("must be between ", -kMaxPriority, " and ", kMaxPriority,
                                        ", got ", spec.priority()));
  }
  if (spec.max_attempts() < 0 || spec.max_attempts() > JobManager::kMaxAttemptsLimit) {
    return bad("max_attempts", absl::StrCat("must be between 1 and ", JobManager::kMaxAttemptsLimit,
                                            ", got ", spec.max_attempts()));
  }
  if (spec.has_time_limit()) {
    const auto& d = spec.time_limit();
    if (d.nanos() < 0 || d.nanos() > 999999999 || d.seconds() > 315576000000 || d.seconds() < 0 || (d.seconds() == 0 && d.nanos() <= 0)) {
      return bad("time_limit", "must be a positive duration");
    }
  }
  if (spec.labels_size() > kMaxLabels) {
    return bad("labels", absl::StrCat("at most ", kMaxLabels, " labels, got ", spec.labels_size()));
  }
  for (const auto& [k, v] : spec.labels()) {
    if (k.empty() || k.size() > kMaxLabelBytes || v.size() > kMaxLabelBytes ||
        k.find('=') != std::string::npos) {
      return bad("labels", absl::StrCat("label '", k.substr(0, 64),
                                        "': keys must be 1-256 bytes without '=', values at "
                                        "most 256 bytes"));
    }
  }
  if (spec.idempotency_key().size() > kMaxIdempotencyKey) {
    return bad("idempotency_key", absl::StrCat("at most ", kMaxIdempotencyKey, " bytes"));
  }
  return absl::OkStatus();
}

std::string OutcomeMessage(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kUnknown) {
    return std::string(s.message());
  }
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", s.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(ManagerOptions options,
                                                               const KindRegistry* kinds) {
  std::unique_ptr<JobManager> m(new JobManager(std::move(options), kinds));
  if (absl::Status s = m->Init(); !s.ok()) return s;
  return m;
}

JobManager::JobManager(ManagerOptions options, const KindRegistry* kinds)
    : options_(std::move(options)), kinds_(kinds) {}

JobManager::~JobManager() { Shutdown(); }

absl::Status JobManager::Init() {
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", options_.data_dir, ": ", ec.message()));
  }
  fs::remove_all(fs::path(options_.data_dir) / "scratch", ec);
  blobs_ = std::make_unique<store::BlobStore>((fs::path(options_.data_dir) / "blobs").string());
  if (absl::Status s = blobs_->Init(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<store::Store>> st =
      store::Store::Open((fs::path(options_.data_dir) / "loupe.db").string());
  if (!st.ok()) return st.status();
  store_ = std::move(*st);
  RemoveStaleStateDirs();
  store_->SetEventListener([this](const std::vector<loupe::v1::JobEvent>& e) { hub_.Publish(e); });
  absl::StatusOr<store::RecoveryReport> r = store_->RecoverInterrupted();
  if (!r.ok()) return r.status();
  return absl::OkStatus();
}

void JobManager::StartWorkers() {
  WorkerPool::Options po;
  po.workers = options_.workers;
  po.threads_per_job = options_.threads_per_job;
  po.thread_init = options_.thread_init;
  pool_ = std::make_unique<WorkerPool>(this, po);
  pool_->Start();
}

void JobManager::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && pool_ == nullptr) return;
    stopping_ = true;
    for (auto& [_, flags] : running_) flags->shutting_down = true;
  }
  cv_.notify_all();
  if (pool_) {
    pool_->Join();
    pool_.reset();
  }
}

void JobManager::Wake() {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++wake_generation_;
  }
  cv_.notify_all();
}

// --- admission ---------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> JobManager::Admit(const store::User& user, JobSpec& spec,
                                                           const JobKind** kind_out) {
  const JobKind* kind = kinds_->ForSpec(spec);
  if (kind == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the job spec names no job kind: set the parameters of one of ",
        absl::StrJoin(kinds_->Names(), ", ")));
  }
  if (absl::Status s = CheckSpecFields(spec); !s.ok()) return s;
  if (spec.max_attempts() == 0) spec.set_max_attempts(1);
  absl::StatusOr<google::protobuf::Message*> params = MutableKindParams(&spec, kind->name());
  if (!params.ok()) return params.status();
  if (absl::Status s = ApplyDefaultsAndValidate(*kind, *params);
      !s.ok())
    return s;

  std::vector<std::string> deps;
  for (const std::string& ref_text : ReferenceValues(*kind, **params)) {
    absl::StatusOr<Reference> ref = ParseReference(ref_text, options_.allowed_roots);
    if (!ref.ok()) {
      return absl::Status(ref.status().code(), absl::StrCat(kind->name(), " input: ",
                                                            ref.status().message()));
    }
    if (ref->type == Reference::Type::kDataset) {
      absl::StatusOr<loupe::v1::Dataset> ds = store_->GetDataset(ref->id);
      if (!ds.ok()) return absl::InvalidArgumentError(absl::StrCat("input ", ref_text, ": ",
                                                                   ds.status().message()));
    } else if (ref->type == Reference::Type::kJob || ref->type == Reference::Type::kJobArtifact) {
      absl::StatusOr<Job> j = store_->GetJob(ref->id);
      if (!j.ok() || !MayAccess(user, j->owner())) {
        return absl::InvalidArgumentError(
            absl::StrCat("input ", ref_text, ": job ", ref->id, " not found"));
      }
      if (j->state() == loupe::v1::FAILED || j->state() == loupe::v1::CANCELLED) {
        return absl::FailedPreconditionError(absl::StrCat(
            "input ", ref_text, ": job ", ref->id, " ended ",
            loupe::v1::JobState_Name(j->state()), (j->error().empty() ? "" : ": "), j->error()));
      }
      if (j->state() == loupe::v1::SUCCEEDED && ref->type == Reference::Type::kJobArtifact) {
        absl::StatusOr<store::ArtifactRecord> a = store_->GetArtifact(ref->id, ref->name);
        if (!a.ok()) {
          return absl::InvalidArgumentError(absl::StrCat("input ", ref_text, ": ",
                                                         a.status().message()));
        }
      }
      deps.push_back(ref->id);
    }
  }
  *kind_out = kind;
  return deps;
}

void JobManager::Submit(const store::User& user, JobSpec spec, SubmitDone done) {
  const JobKind* kind = nullptr;
  absl::StatusOr<std::vector<std::string>> deps = Admit(user, spec, &kind);
  if (!deps.ok()) {
    done(deps.status());
    return;
  }
  store::NewJob nj;
  nj.owner = user.name;
  nj.kind = kind->name();
  nj.spec = std::move(spec);
  nj.depends_on = std::move(*deps);
  store_->SubmitJob(std::move(nj), [this, done = std::move(done)](
                                       absl::StatusOr<store::SubmitOutcome> r) {
    if (!r.ok()) {
      done(r.status());
      return;
    }
    if (!r->existing) Wake();
    done(std::move(r->job));
  });
}

absl::StatusOr<Job> JobManager::GetVisible(const store::User& user, const std::string& id) {
  if (!store::LooksLikeJobId(id)) {
    return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a job id"));
  }
  absl::StatusOr<Job> j = store_->GetJob(id);
  if (!j.ok()) return j.status();
  if (!MayAccess(user, j->owner())) {
    return absl::PermissionDeniedError(absl::StrCat("job ", id, " belongs to another user"));
  }
  return j;
}

absl::StatusOr<Job> JobManager::Get(const store::User& user, const std::string& id) {
  return GetVisible(user, id);
}

absl::StatusOr<loupe::v1::ListJobsResponse> JobManager::List(
    const store::User& user, const loupe::v1::ListJobsRequest& req) {
  store::JobFilter f;
  if (req.owner() == "*") {
    if (!user.admin) return absl::PermissionDeniedError("only admins may list every user's jobs");
  } else if (!req.owner().empty() && req.owner() != user.name) {
    if (!user.admin) return absl::PermissionDeniedError("only admins may list other users' jobs");
    f.owner = req.owner();
  } else {
    f.owner = user.name;
  }
  f.state = req.state();
  f.kind = req.kind();
  if (!req.label().empty()) {
    size_t eq = req.label().find('=');
    f.label_key = req.label().substr(0, eq);
    if (eq != std::string::npos) f.label_value = req.label().substr(eq + 1);
  }
  if (req.page_size() < 0) return absl::InvalidArgumentError("'page_size' must not be negative");
  f.limit = req.page_size() == 0 ? 50 : std::min(req.page_size(), 1000);
  if (!req.page_token().empty()) {
    if (!absl::SimpleAtoi(req.page_token(), &f.before_seq) || f.before_seq <= 0) {
      return absl::InvalidArgumentError("'page_token' is not a token this server issued");
    }
  }
  absl::StatusOr<store::JobPage> page = store_->ListJobs(f);
  if (!page.ok()) return page.status();
  loupe::v1::ListJobsResponse resp;
  for (auto& j : page->jobs) *resp.add_jobs() = std::move(j);
  if (page->next_before_seq > 0) resp.set_next_page_token(absl::StrCat(page->next_before_seq));
  return resp;
}

absl::StatusOr<Job> JobManager::Cancel(const store::User& user, const std::string& id) {
  if (absl::StatusOr<Job> j = GetVisible(user, id); !j.ok()) return j.status();
  absl::StatusOr<store::CancelOutcome> c = store_->CancelJob(id);
  if (!c.ok()) return c.status();
  if (c->was_running) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = running_.find(id);
    if (it != running_.end()) {
      it->second->cancelled = true;
    } else {
      // Claimed but not yet registered by its worker: Next() applies it.
      cancel_before_start_.insert(id);
    }
  }
  return c->job;
}

absl::StatusOr<loupe::v1::JobResult> JobManager::Result(const store::User& user,
                                                        const std::string& id) {
  absl::StatusOr<Job> j = GetVisible(user, id);
  if (!j.ok()) return j.status();
  if (!IsTerminal(j->state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", id, " is ", loupe::v1::JobState_Name(j->state()), "; its result comes when it ends"));
  }
  absl::StatusOr<loupe::v1::JobResult> r = store_->GetResult(id);
  if (absl::IsNotFound(r.status())) {
    // Ended without running (cancelled while queued, or an input failed).
    loupe::v1::JobResult empty;
    empty.set_job_id(id);
    empty.set_state(j->state());
    empty.set_error(j->error());
    empty.set_attempt(j->attempt());
    return empty;
  }
  if (r.ok()) r->set_state(j->state());
  return r;
}

absl::StatusOr<store::ArtifactRecord> JobManager::Artifact(const store::User& user,
                                                           const std::string& job_id,
                                                           const std::string& name) {
  if (absl::StatusOr<Job> j = GetVisible(user, job_id); !j.ok()) return j.status();
  absl::StatusOr<store::ArtifactRecord> a = store_->GetArtifact(job_id, name);
  if (!a.ok()) return a.status();
  a->path = blobs_->PathOf(a->artifact.sha256());
  return a;
}

absl::StatusOr<loupe::v1::ListJobKindsResponse> JobManager::Kinds(const std::string& name) const {
  loupe::v1::ListJobKindsResponse resp;
  for (const JobKind* k : kinds_->All()) {
    if (!name.empty() && k->name() != name) continue;
    *resp.add_kinds() = DescribeKind(*k, kinds_->ParamsDescriptor(*k));
  }
  if (!name.empty() && resp.kinds_size() == 0) {
    std::string hint = SuggestName(name, kinds_->Names());
    return absl::NotFoundError(absl::StrCat("unknown job kind '", name, "'",
                                            hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?")));
  }
  return resp;
}

absl::StatusOr<loupe::v1::Dataset> JobManager::AddDataset(const store::User& user,
                                                          const std::string& name,
                                                          const store::BlobInfo& blob,
                                                          const std::string& media_type) {
  return store_->AddDataset(user.name, name, blob.sha256, blob.size, media_type);
}

// --- running jobs ------------------------------------------------------------

std::optional<Assignment> JobManager::Next() {
  while (true) {
    uint64_t generation;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return std::nullopt;
      generation = wake_generation_;
    }
    absl::StatusOr<std::optional<Job>> claimed = store_->ClaimNext();
    if (claimed.ok() && claimed->has_value()) {
      Job& job = **claimed;
      Assignment a;
      a.job_id = job.id();
      a.attempt = job.attempt();
      a.kind = kinds_->Find(job.kind());
      const google::protobuf::Message* params = KindParams(job.spec());
      if (a.kind == nullptr || params == nullptr) {
        store::AttemptOutcome o;
        o.state = loupe::v1::FAILED;
        o.error = absl::StrCat("this server has no job kind '", job.kind(), "'");
        (void)store_->FinishAttempt(job.id(), job.attempt(), o);
        continue;
      }
      a.params.reset(params->New());
      a.params->CopyFrom(*params);
      if (job.spec().has_time_limit()) {
        a.deadline = absl::Now() + absl::Seconds(job.spec().time_limit().seconds()) +
                     absl::Nanoseconds(job.spec().time_limit().nanos());
      }
      std::lock_guard<std::mutex> l(mu_);
      auto flags = std::make_shared<RunFlags>();
      flags->shutting_down = stopping_;
      flags->cancelled = cancel_before_start_.erase(a.job_id) > 0;
      running_[a.job_id] = flags;
      return a;
    }
    std::unique_lock<std::mutex> l(mu_);
    // The timeout only guards against a missed wake-up; submits wake us at once.
    cv_.wait_for(l, std::chrono::seconds(2),
                 [&] { return stopping_ || wake_generation_ != generation; });
  }
}

std::unique_ptr<JobContext> JobManager::MakeContext(const Assignment& a) {
  std::shared_ptr<RunFlags> flags;
  {
    std::lock_guard<std::mutex> l(mu_);
    flags = running_[a.job_id];
  }
  absl::StatusOr<Job> job = store_->GetJob(a.job_id);
  std::string owner = job.ok() ? job->owner() : "";
  absl::Duration limit = absl::InfiniteDuration();
  if (job.ok() && job->spec().has_time_limit()) {
    limit = absl::Seconds(job->spec().time_limit().seconds()) +
            absl::Nanoseconds(job->spec().time_limit().nanos());
  }
  return std::make_unique<RunContext>(this, a.job_id, owner, a.attempt, a.deadline, limit,
                                      options_.threads_per_job, flags);
}

void JobManager::Finish(const Assignment& a, JobContext& ctx, absl::Status outcome) {
  auto& rc = static_cast<RunContext&>(ctx);
  store::AttemptOutcome o;
  if (outcome.ok()) {
    o.state = loupe::v1::SUCCEEDED;
    o.metrics = rc.results();
    o.artifacts = rc.artifacts();
    rc.Log(absl::StrCat("attempt ", a.attempt, " succeeded"));
  } else if (rc.cancelled()) {
    o.state = loupe::v1::CANCELLED;
    o.error = "cancelled by user";
  } else if (rc.shutting_down()) {
    o.state = loupe::v1::QUEUED;
    o.interrupted = true;
    o.error = "was interrupted by server shutdown";
  } else {
    o.error = OutcomeMessage(outcome);
    o.metrics = rc.results();
    absl::StatusOr<Job> job = store_->GetJob(a.job_id);
    bool retry = job.ok() && a.attempt < job->spec().max_attempts();
    o.state = retry ? loupe::v1::QUEUED : loupe::v1::FAILED;
    rc.Log(absl::StrCat("attempt ", a.attempt, " failed: ", o.error));
  }
  rc.Flush();
  absl::StatusOr<Job> after = store_->FinishAttempt(a.job_id, a.attempt, o);
  if (after.ok() && IsTerminal(after->state())) {
    std::error_code ec;
    fs::remove_all(JobStateDir(options_.data_dir, a.job_id), ec);
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    running_.erase(a.job_id);
  }
  (void)after;
  Wake();
}

// Checkpoints of jobs that ended while their directory could not be removed
// (a crash between the final commit and the removal, or a queued job that was
// cancelled) would otherwise stay forever.
void JobManager::RemoveStaleStateDirs() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(options_.data_dir) / "state", ec)) {
    const std::string id = entry.path().filename().string();
    absl::StatusOr<Job> job = store_->GetJob(id);
    if (job.ok() && !IsTerminal(job->state())) continue;
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
  }
}

absl::StatusOr<std::string> JobManager::ResolveForJob(const std::string& job_id,
                                                      const std::string& owner,
                                                      absl::string_view reference,
                                                      const std::string& scratch_dir) {
  absl::StatusOr<Reference> ref = ParseReference(reference, options_.allowed_roots);
  if (!ref.ok()) return ref.status();
  switch (ref->type) {
    case Reference::Type::kPath:
      return ref->path;
    case Reference::Type::kDataset: {
      absl::StatusOr<loupe::v1::Dataset> ds = store_->GetDataset(ref->id);
      if (!ds.ok()) return ds.status();
      return blobs_->PathOf(ds->sha256());
    }
    case Reference::Type::kJobArtifact: {
      absl::StatusOr<store::ArtifactRecord> a = store_->GetArtifact(ref->id, ref->name);
      if (!a.ok()) return a.status();
      return blobs_->PathOf(a->artifact.sha256());
    }
    case Reference::Type::kJob: {
      absl::StatusOr<loupe::v1::JobResult> r = store_->GetResult(ref->id);
      if (!r.ok()) return r.status();
      // A directory of links named as the artifacts, so loaders that expect
      // a model directory (config.json, model.safetensors, …) work unchanged.
      fs::path dir = fs::path(scratch_dir) / "inputs" / ref->id;
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) return absl::InternalError(absl::StrCat("mkdir ", dir.string(), ": ", ec.message()));
      for (const auto& a : r->artifacts()) {
        fs::create_symlink(blobs_->PathOf(a.sha256()), dir / a.name(), ec);
        if (ec && ec != std::errc::file_exists) {
          return absl::InternalError(absl::StrCat("link ", a.name(), ": ", ec.message()));
        }
      }
      return dir.string();
    }
  }
  (void)job_id;
  (void)owner;
  return absl::InternalError("unreachable");
}

}  // namespace loupe
