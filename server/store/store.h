// Store: Loupe's durable state in SQLite (jobs, events, results, artifacts,
// datasets, users and tokens).
//
// Writes run on one writer thread that gathers every pending write into one
// transaction (group commit): a submit's callback runs only after the
// transaction holding it has been committed with synchronous=FULL, so an
// acknowledged job survives kill -9 and power loss, while thousands of
// concurrent submits share one fsync. Reads use a small pool of separate
// connections (WAL lets them run beside the writer). Every method is
// thread-safe. After each commit, the committed events go to the event
// listener and then the writes' callbacks run, in commit order.
//
// Who commits: a caller that waits for its write (SubmitJob, every *Sync
// method) commits it on its own thread when no commit is under way, and runs
// the callbacks there too when none are pending: a lone write then costs no
// thread hand-off. Otherwise the write queues for the writer thread, whose
// callbacks run on a completion thread so that answering thousands of RPCs
// does not delay its next commit. Consequence for callers: a callback may run
// on any thread that submits a write, so no one may hold a lock that a
// callback (or the event listener) takes while calling a Store method, and a
// callback must not wait for another write.
#ifndef LOUPE_SERVER_STORE_STORE_H_
#define LOUPE_SERVER_STORE_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loupe/v1/jobs.pb.h"
#include "loupe/v1/service.pb.h"
#include "server/store/sqlite.h"

namespace loupe::store {

struct User {
  std::string name;
  bool admin = false;
};

struct NewJob {
  std::string owner;
  std::string kind;
  loupe::v1::JobSpec spec;  // defaults applied; max_attempts >= 1
  std::vector<std::string> depends_on;
};

struct SubmitOutcome {
  loupe::v1::Job job;
  bool existing = false;  // the idempotency key matched an earlier job
};

struct JobFilter {
  std::optional<std::string> owner;  // nullopt: every owner
  loupe::v1::JobState state = loupe::v1::JOB_STATE_UNSPECIFIED;
  std::string kind;
  std::string label_key, label_value;  // value empty: any value
  int limit = 50;
  int64_t before_seq = 0;  // page token: only jobs submitted before this
};

struct JobPage {
  std::vector<loupe::v1::Job> jobs;
  int64_t next_before_seq = 0;  // 0 on the last page
};

struct ArtifactRecord {
  loupe::v1::Artifact artifact;
  std::string path;  // where the blob lives
};

// How an attempt ended, as recorded by FinishAttempt.
struct AttemptOutcome {
  loupe::v1::JobState state;  // SUCCEEDED, FAILED, CANCELLED, or QUEUED (retry)
  std::string error;
  std::map<std::string, double> metrics;
  std::vector<loupe::v1::Artifact> artifacts;  // blobs already stored
  // With state QUEUED: the attempt was interrupted by a graceful shutdown and
  // does not count; no result is recorded.
  bool interrupted = false;
};

struct CancelOutcome {
  loupe::v1::Job job;
  bool was_running = false;  // the worker must be told to stop
};

struct RecoveryReport {
  int requeued = 0;
  int failed = 0;
  int cancelled = 0;
};

class Store {
 public:
  using EventListener = std::function<void(const std::vector<loupe::v1::JobEvent>&)>;

  // Opens or creates the database at `path` and migrates it.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();  // commits what is queued, then stops the writer

  // Called after each commit that added events, in commit order, before that
  // commit's callbacks (see the class comment for the thread). Set before any
  // write.
  void SetEventListener(EventListener listener);

  // --- users and tokens -------------------------------------------------
  // Creates the user if needed (admin is only ever raised, never lowered)
  // and a new token; returns the token, which is stored only as a hash.
  absl::StatusOr<std::string> CreateToken(const std::string& user, bool admin);
  // NOT_FOUND for an unknown token.
  absl::StatusOr<User> UserForTokenHash(const std::string& token_hash);

  // --- jobs ---------------------------------------------------------------
  // Durable before `done` runs (possibly on this thread, before SubmitJob
  // returns; keep it short).
  void SubmitJob(NewJob job, std::function<void(absl::StatusOr<SubmitOutcome>)> done);
  absl::StatusOr<SubmitOutcome> SubmitJobSync(NewJob job);

  absl::StatusOr<loupe::v1::Job> GetJob(const std::string& id);
  absl::StatusOr<JobPage> ListJobs(const JobFilter& filter);

  // Takes the best runnable job: QUEUED, every dependency SUCCEEDED; highest
  // priority first, then submission order. Marks it RUNNING as its next
  // attempt. nullopt when nothing is runnable.
  absl::StatusOr<std::optional<loupe::v1::Job>> ClaimNext();
  // Records the end of attempt `attempt`. Ignored (FAILED_PRECONDITION) if
  // the job is no longer RUNNING that attempt: the attempt number fences
  // stale workers. Failing or cancelling a job also fails the queued jobs
  // that depend on it, transitively.
  absl::StatusOr<loupe::v1::Job> FinishAttempt(const std::string& id, int attempt,
                                               const AttemptOutcome& outcome);
  // Cancels a QUEUED job at once; marks a RUNNING one cancel_requested (a
  // restart then ends it CANCELLED instead of retrying it). Terminal jobs are
  // returned unchanged.
  absl::StatusOr<CancelOutcome> CancelJob(const std::string& id);
  // On start-up: RUNNING jobs of a previous process become their next attempt
  // (QUEUED), or FAILED once attempts are exhausted, or CANCELLED if a cancel
  // was requested.
  absl::StatusOr<RecoveryReport> RecoverInterrupted();

  // Appends events for one job; seq and time are assigned here. Progress
  // events also update the job row. Fire and forget: ordering per job is
  // preserved; durability comes with the next group commit.
  void AppendEvents(const std::string& job_id, int attempt,
                    std::vector<loupe::v1::JobEvent> events);
  // Events with seq > after_seq, in order, at most `limit`. A job's first
  // event (seq 1: QUEUED, "submitted") is derived from its row, not stored.
  absl::StatusOr<std::vector<loupe::v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                              int64_t after_seq, int limit);

  // Result of the job's latest finished attempt; NOT_FOUND before one ends.
  absl::StatusOr<loupe::v1::JobResult> GetResult(const std::string& id);
  absl::StatusOr<ArtifactRecord> GetArtifact(const std::string& job_id, const std::string& name);

  // --- datasets -------------------------------------------------------------
  // Registers a stored blob as a dataset; the same content returns the
  // dataset already registered (deduplicated = true).
  absl::StatusOr<loupe::v1::Dataset> AddDataset(const std::string& owner, const std::string& name,
                                                const std::string& sha256, int64_t size,
                                                const std::string& media_type);
  absl::StatusOr<loupe::v1::Dataset> GetDataset(const std::string& id);

  // Waits until every write queued before the call is committed.
  absl::Status Flush();

  // Path of the database file.
  const std::string& path() const { return path_; }

  // Tests only: runs `sql` as one write and waits for its commit; with
  // `then_fail` the write fails after running it, which must undo it alone.
  absl::Status TEST_Write(const std::string& sql, bool then_fail);

 private:
  class Txn;
  struct Write {
    std::function<absl::Status(Txn&)> apply;
    std::function<void(absl::Status)> done;  // after commit (or failure)
  };

  Store(std::string path, std::unique_ptr<Db> writer);
  void WriterLoop();
  void CompletionLoop();
  // Queues `w`; with `caller_may_commit` (the caller is about to wait anyway)
  // commits it on this thread when no commit is under way.
  void Enqueue(Write w, bool caller_may_commit);
  std::vector<Write> TakeBatchLocked();  // needs queue_mu_
  // Applies and commits `batch`; returns what must run after the commit.
  std::function<void()> CommitBatch(std::vector<Write> batch);
  // True: the caller must run `completion` itself (RunClaimedCompletion);
  // false: it was queued for the completion thread.
  bool ClaimOrQueueCompletion(std::function<void()>& completion);
  void RunClaimedCompletion(const std::function<void()>& completion);
  // Runs `apply` on the writer and waits for its commit.
  absl::Status WriteSync(std::function<absl::Status(Txn&)> apply);

  // A read connection from the pool, returned on destruction.
  class Reader;
  absl::StatusOr<Reader> AcquireReader();

  const std::string path_;
  std::unique_ptr<Db> writer_db_;
  EventListener listener_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Write> queue_;  // guarded by queue_mu_
  bool stopping_ = false;    // guarded by queue_mu_
  bool committing_ = false;  // guarded by queue_mu_; one commit at a time
  std::thread writer_;

  std::mutex completion_mu_;
  std::condition_variable completion_cv_;
  std::deque<std::function<void()>> completions_;  // guarded by completion_mu_
  bool completion_stopping_ = false;               // guarded by completion_mu_
  // Some thread is running a completion; the next waits (commit order).
  bool completing_ = false;  // guarded by completion_mu_
  std::thread completer_;

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Db>> idle_readers_;  // guarded by readers_mu_
};

// Job ids are 12 lower-case hex characters; this checks the shape only.
bool LooksLikeJobId(absl::string_view id);

}  // namespace loupe::store

#endif  // LOUPE_SERVER_STORE_STORE_H_
