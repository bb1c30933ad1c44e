// WorkerPool: a fixed set of threads that run jobs handed out by a JobSource.
//
// The pool owns its threads; the source (the server's scheduler) owns the
// truth about jobs. Each thread first calls `thread_init` (which sets the
// LibTorch thread count), then loops: Next() → MakeContext() → kind->Run() →
// Finish(). Run exceptions (c10::Error, std::bad_alloc, …) become INTERNAL
// failures, never a dead thread. Start/Stop are not thread-safe with each
// other; call them from one owner.
#ifndef LOUPE_WORKERS_RUNTIME_WORKER_POOL_H_
#define LOUPE_WORKERS_RUNTIME_WORKER_POOL_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "workers/runtime/job_context.h"
#include "workers/runtime/job_kind.h"

namespace loupe {

// One attempt of one job, assigned to a worker thread.
struct Assignment {
  std::string job_id;
  int attempt = 0;
  const JobKind* kind = nullptr;
  // The kind's parameter message, defaults applied.
  std::unique_ptr<google::protobuf::Message> params;
  absl::Time deadline = absl::InfiniteFuture();
};

class JobSource {
 public:
  virtual ~JobSource() = default;
  // Blocks until a job is assigned to the calling worker; nullopt once the
  // source is shutting down (the worker then exits).
  virtual std::optional<Assignment> Next() = 0;
  virtual std::unique_ptr<JobContext> MakeContext(const Assignment& a) = 0;
  // Records the outcome of Run (see JobKind::Run) and releases the job.
  virtual void Finish(const Assignment& a, JobContext& ctx,
                      absl::Status outcome) = 0;
};

class WorkerPool {
 public:
  struct Options {
    int workers = 1;
    int threads_per_job = 1;
    // Called once on each worker thread before its first job.
    std::function<void(int threads_per_job)> thread_init;
  };

  WorkerPool(JobSource* source, Options options);
  ~WorkerPool();  // joins (the source must already return nullopt)

  void Start();
  // Waits for every worker to return; the source must make Next() return
  // nullopt and running jobs stop (via cancellation) first.
  void Join();

  // Runs one assignment on the calling thread, as a worker would.
  static void RunOne(JobSource* source, Assignment a);

 private:
  JobSource* source_;
  Options options_;
  std::vector<std::thread> threads_;
};

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_WORKER_POOL_H_
