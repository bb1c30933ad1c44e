// JobContext: what a running job may do besides computing.
//
// One context is made per attempt by the worker pool and handed to
// JobKind::Run on the worker thread that runs the job. Its methods are meant to
// be called from that thread; they never block on the network or on clients
// (events are queued to the store's writer), so calling them every step is cheap.
#ifndef LOUPE_WORKERS_RUNTIME_JOB_CONTEXT_H_
#define LOUPE_WORKERS_RUNTIME_JOB_CONTEXT_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loupe {

class JobContext {
 public:
  virtual ~JobContext() = default;

  // OK while the job should keep going; CANCELLED once a user cancelled it,
  // DEADLINE_EXCEEDED once its time limit has passed. Call it every step and
  // return its status as soon as it is not OK.
  virtual absl::Status CheckContinue() = 0;

  // Progress of this attempt: `step` of `total` (total may be 0 if unknown).
  virtual void ReportProgress(int64_t step, int64_t total) = 0;
  // Metrics measured at `step`; streamed to watchers and kept as events.
  virtual void ReportMetrics(int64_t step,
                             const std::map<std::string, double>& values) = 0;
  virtual void Log(absl::string_view line) = 0;

  // A final result field (e.g. "fvu"); the last value set wins.
  virtual void SetResult(absl::string_view name, double value) = 0;

  // Stores an artifact of this attempt. Names are plain file names
  // ([A-Za-z0-9._-]+); writing a name twice replaces it.
  virtual absl::Status WriteArtifact(absl::string_view name,
                                     absl::string_view bytes,
                                     absl::string_view media_type) = 0;
  // Same, taking ownership of a file (moved into the store).
  virtual absl::Status WriteArtifactFile(absl::string_view name,
                                         const std::string& path,
                                         absl::string_view media_type) = 0;

  // Turns a reference parameter into a local path: `dataset:ID` and
  // `job:ID/NAME` give a file, `job:ID` a directory holding that job's
  // artifacts, and a server path is returned as is once it is known to be
  // under an allowed root. The server has already checked the syntax and
  // waited for referenced jobs, so errors here mean the input vanished.
  virtual absl::StatusOr<std::string> ResolveInput(
      absl::string_view reference) = 0;

  // A private directory for temporary files, removed after the attempt.
  virtual const std::string& scratch_dir() const = 0;
  // A private directory that survives retries, server shutdowns and crashes
  // (the next attempt sees what this one left): the place for checkpoints
  // that let a long job resume instead of starting over. Removed once the job
  // has ended for good (succeeded, failed on its last attempt, cancelled).
  virtual const std::string& state_dir() const = 0;
  // Compute threads this job may use (LibTorch's are already set to it).
  virtual int threads() const = 0;
  virtual int attempt() const = 0;
  virtual const std::string& job_id() const = 0;
};

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_JOB_CONTEXT_H_
