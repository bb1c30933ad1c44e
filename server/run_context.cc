#include "absl/strings/string_view.h"
#include "server/run_context.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/job_manager.h"
#include "server/references.h"

namespace loupe {

namespace {
constexpr absl::Duration kFlushInterval = absl::Milliseconds(100);
}

RunContext::RunContext(JobManager* manager, std::string job_id, std::string owner, int attempt,
                       absl::Time deadline, absl::Duration time_limit, int threads,
                       std::shared_ptr<RunFlags> flags)
    : manager_(manager),
      job_id_(std::move(job_id)),
      owner_(std::move(owner)),
      attempt_(attempt),
      deadline_(deadline),
      time_limit_(time_limit),
      threads_(threads),
      flags_(std::move(flags)) {
  scratch_dir_ = (std::filesystem::path(manager_->options().data_dir) / "scratch" /
                  absl::StrCat(job_id_, "-", attempt_))
                     .string();
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir_, ec);
  std::filesystem::create_directories(scratch_dir_, ec);
  state_dir_ = JobStateDir(manager_->options().data_dir, job_id_);
  std::filesystem::create_directories(state_dir_, ec);
}

std::string JobStateDir(const std::string& data_dir, const std::string& job_id) {
  return (std::filesystem::path(data_dir) / "state" / job_id).string();
}

RunContext::~RunContext() {
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir_, ec);
}

bool RunContext::cancelled() const { return flags_->cancelled.load(); }
bool RunContext::shutting_down() const { return flags_->shutting_down.load(); }

absl::Status RunContext::CheckContinue() {
  MaybeFlush();
  if (flags_->cancelled.load(std::memory_order_relaxed)) {
    return absl::CancelledError("cancelled by user");
  }
  if (flags_->shutting_down.load(std::memory_order_relaxed)) {
    return absl::UnavailableError("interrupted by server shutdown");
  }
  if (absl::Now() > deadline_) {
    return absl::DeadlineExceededError(
        absl::StrCat("time limit of ", absl::FormatDuration(time_limit_), " exceeded"));
  }
  return absl::OkStatus();
}

void RunContext::ReportProgress(int64_t step, int64_t total) {
  loupe::v1::Progress p;
  p.set_step(step);
  p.set_total(total);
  pending_progress_ = p;
  MaybeFlush();
}

void RunContext::ReportMetrics(int64_t step, const std::map<std::string, double>& values) {
  loupe::v1::JobEvent e;
  e.mutable_metrics()->set_step(step);
  for (const auto& [k, v] : values) (*e.mutable_metrics()->mutable_values())[k] = v;
  pending_.push_back(std::move(e));
  MaybeFlush();
}

void RunContext::Log(absl::string_view line) {
  loupe::v1::JobEvent e;
  e.mutable_log()->set_text(std::string(line.substr(0, 4096)));
  pending_.push_back(std::move(e));
  MaybeFlush();
}

void RunContext::SetResult(absl::string_view name, double value) {
  results_[std::string(name)] = value;
}

void RunContext::MaybeFlush() {
  if (absl::Now() - last_flush_ >= kFlushInterval) Flush();
}

void RunContext::Flush() {
  last_flush_ = absl::Now();
  if (pending_progress_) {
    loupe::v1::JobEvent e;
    *e.mutable_progress() = *pending_progress_;
    pending_.push_back(std::move(e));
    pending_progress_.reset();
  }
  if (pending_.empty()) return;
  manager_->store().AppendEvents(job_id_, attempt_, std::move(pending_));
  pending_.clear();
}

absl::Status RunContext::AddArtifact(absl::string_view name, absl::string_view media_type,
                                     absl::StatusOr<store::BlobInfo> blob) {
  if (!blob.ok()) return blob.status();
  loupe::v1::Artifact a;
  a.set_name(std::string(name));
  a.set_size(blob->size);
  a.set_sha256(blob->sha256);
  a.set_media_type(media_type.empty() ? "application/octet-stream" : std::string(media_type));
  artifacts_[a.name()] = a;
  return absl::OkStatus();
}

absl::Status RunContext::WriteArtifact(absl::string_view name, absl::string_view bytes,
                                       absl::string_view media_type) {
  if (!IsValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid artifact name '", name, "'"));
  }
  return AddArtifact(name, media_type, manager_->blobs().PutBytes(bytes));
}

absl::Status RunContext::WriteArtifactFile(absl::string_view name, const std::string& path,
                                           absl::string_view media_type) {
  if (!IsValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid artifact name '", name, "'"));
  }
  return AddArtifact(name, media_type, manager_->blobs().PutFile(path));
}

std::vector<loupe::v1::Artifact> RunContext::artifacts() const {
  std::vector<loupe::v1::Artifact> out;
  for (const auto& [_, a] : artifacts_) out.push_back(a);
  return out;
}

absl::StatusOr<std::string> RunContext::ResolveInput(absl::string_view reference) {
  return manager_->ResolveForJob(job_id_, owner_, reference, scratch_dir_);
}

}  // namespace loupe
