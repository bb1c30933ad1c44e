// JobManager: the server's core, between the gRPC frontend and the workers.
//
// It validates and admits jobs (typed parameters, references, permissions),
// answers queries, and acts as the workers' JobSource: it hands out the best
// runnable job, builds each attempt's JobContext and records how attempts
// end (retry, time limit, cancellation, graceful shutdown). All durable state
// lives in the Store; the only in-memory state is the set of running
// attempts and a wake-up counter. Thread-safe; no method blocks on a job.
#ifndef LOUPE_SERVER_JOB_MANAGER_H_
#define LOUPE_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loupe/v1/service.pb.h"
#include "server/event_hub.h"
#include "server/references.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"
#include "workers/runtime/registry.h"
#include "workers/runtime/worker_pool.h"

namespace loupe {

struct ManagerOptions {
  std::string data_dir;
  std::vector<std::string> allowed_roots;
  int workers = 1;
  int threads_per_job = 1;
  // Called on each worker thread before its first job (sets LibTorch threads).
  std::function<void(int)> thread_init;
  // How long a graceful shutdown waits for running jobs to stop.
  absl::Duration shutdown_grace = absl::Seconds(30);
};

// Flags one running attempt reads through its JobContext.
struct RunFlags {
  std::atomic<bool> cancelled{false};
  std::atomic<bool> shutting_down{false};
};

class JobManager : public JobSource {
 public:
  static constexpr int kMaxAttemptsLimit = 10;

  // Opens the store under options.data_dir, recovers interrupted jobs.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(ManagerOptions options,
                                                            const KindRegistry* kinds);
  ~JobManager() override;

  void StartWorkers();
  // Stops handing out jobs, asks running ones to stop and requeues them
  // without using up an attempt, waits for the workers.
  void Shutdown();

  // --- frontend API ---------------------------------------------------------
  using SubmitDone = std::function<void(absl::StatusOr<loupe::v1::Job>)>;
  // `done` runs once the job is durable (or on error), possibly inline.
  void Submit(const store::User& user, loupe::v1::JobSpec spec, SubmitDone done);
  absl::StatusOr<loupe::v1::Job> Get(const store::User& user, const std::string& id);
  absl::StatusOr<loupe::v1::ListJobsResponse> List(const store::User& user,
                                                   const loupe::v1::ListJobsRequest& req);
  absl::StatusOr<loupe::v1::Job> Cancel(const store::User& user, const std::string& id);
  absl::StatusOr<loupe::v1::JobResult> Result(const store::User& user, const std::string& id);
  // The artifact's metadata and the path of its blob.
  absl::StatusOr<store::ArtifactRecord> Artifact(const store::User& user,
                                                 const std::string& job_id,
                                                 const std::string& name);
  absl::StatusOr<loupe::v1::ListJobKindsResponse> Kinds(const std::string& name) const;
  absl::StatusOr<loupe::v1::Dataset> AddDataset(const store::User& user, const std::string& name,
                                                const store::BlobInfo& blob,
                                                const std::string& media_type);

  store::Store& store() { return *store_; }
  store::BlobStore& blobs() { return *blobs_; }
  EventHub& hub() { return hub_; }
  const ManagerOptions& options() const { return options_; }

  // --- JobSource -------------------------------------------------------------
  std::optional<Assignment> Next() override;
  std::unique_ptr<JobContext> MakeContext(const Assignment& a) override;
  void Finish(const Assignment& a, JobContext& ctx, absl::Status outcome) override;

  // Resolves a reference for a running job (used by its JobContext).
  absl::StatusOr<std::string> ResolveForJob(const std::string& job_id, const std::string& owner,
                                            absl::string_view reference,
                                            const std::string& scratch_dir);

 private:
  JobManager(ManagerOptions options, const KindRegistry* kinds);
  absl::Status Init();
  // Checks the spec and fills defaults; returns the kind and the jobs the
  // spec's references wait for.
  absl::StatusOr<std::vector<std::string>> Admit(const store::User& user,
                                                 loupe::v1::JobSpec& spec,
                                                 const JobKind** kind);
  absl::StatusOr<loupe::v1::Job> GetVisible(const store::User& user, const std::string& id);
  void Wake();
  void RemoveStaleStateDirs();

  ManagerOptions options_;
  const KindRegistry* kinds_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::BlobStore> blobs_;
  EventHub hub_;
  std::unique_ptr<WorkerPool> pool_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wake_generation_ = 0;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::map<std::string, std::shared_ptr<RunFlags>> running_;  // guarded by mu_
  std::set<std::string> cancel_before_start_;                  // guarded by mu_
};

}  // namespace loupe

#endif  // LOUPE_SERVER_JOB_MANAGER_H_
