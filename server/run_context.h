// RunContext: the JobContext of one attempt running inside the server.
//
// Events are buffered and handed to the store at most every 100 ms (and at
// the end), so a job may report every step without flooding the database;
// only progress is coalesced (the latest wins), metrics and logs are all
// kept. Artifacts go straight into the blob store; the result rows are
// written by JobManager::Finish in the same transaction as the final state.
// Used by the one worker thread running the attempt.
#ifndef LOUPE_SERVER_RUN_CONTEXT_H_
#define LOUPE_SERVER_RUN_CONTEXT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "loupe/v1/jobs.pb.h"
#include "server/store/blob_store.h"
#include "workers/runtime/job_context.h"

namespace loupe {

class JobManager;
struct RunFlags;

// Where job `job_id` keeps its JobContext::state_dir().
std::string JobStateDir(const std::string& data_dir, const std::string& job_id);

class RunContext : public JobContext {
 public:
  RunContext(JobManager* manager, std::string job_id, std::string owner, int attempt,
             absl::Time deadline, absl::Duration time_limit, int threads,
             std::shared_ptr<RunFlags> flags);
  ~RunContext() override;  // removes the scratch directory

  absl::Status CheckContinue() override;
  void ReportProgress(int64_t step, int64_t total) override;
  void ReportMetrics(int64_t step, const std::map<std::string, double>& values) override;
  void Log(absl::string_view line) override;
  void SetResult(absl::string_view name, double value) override;
  absl::Status WriteArtifact(absl::string_view name, absl::string_view bytes,
                             absl::string_view media_type) override;
  absl::Status WriteArtifactFile(absl::string_view name, const std::string& path,
                                 absl::string_view media_type) override;
  absl::StatusOr<std::string> ResolveInput(absl::string_view reference) override;
  const std::string& scratch_dir() const override { return scratch_dir_; }
  const std::string& state_dir() const override { return state_dir_; }
  int threads() const override { return threads_; }
  int attempt() const override { return attempt_; }
  const std::string& job_id() const override { return job_id_; }

  // Hands buffered events to the store now.
  void Flush();
  const std::map<std::string, double>& results() const { return results_; }
  std::vector<loupe::v1::Artifact> artifacts() const;
  bool cancelled() const;
  bool shutting_down() const;

 private:
  void MaybeFlush();
  absl::Status AddArtifact(absl::string_view name, absl::string_view media_type,
                           absl::StatusOr<store::BlobInfo> blob);

  JobManager* manager_;
  const std::string job_id_;
  const std::string owner_;
  const int attempt_;
  const absl::Time deadline_;
  const absl::Duration time_limit_;
  const int threads_;
  std::shared_ptr<RunFlags> flags_;
  std::string scratch_dir_;
  std::string state_dir_;  // <data-dir>/state/<job id>; the manager removes it

  std::vector<loupe::v1::JobEvent> pending_;
  std::optional<loupe::v1::Progress> pending_progress_;
  absl::Time last_flush_ = absl::InfinitePast();
  std::map<std::string, double> results_;
  std::map<std::string, loupe::v1::Artifact> artifacts_;
};

}  // namespace loupe

#endif  // LOUPE_SERVER_RUN_CONTEXT_H_
