#include "absl/strings/string_view.h"
#include "server/store/store.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <future>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "server/store/blob_store.h"
#include "server/store/schema.h"

namespace loupe::store {

using loupe::v1::Job;
using loupe::v1::JobEvent;
using loupe::v1::JobState;

namespace {

constexpr size_t kMaxBatch = 8192;
constexpr int kMaxIdleReaders = 8;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

google::protobuf::Timestamp ToTimestamp(int64_t us) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(us);
}

std::string RandomHex(int bytes) {
  std::string buf(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), bytes);
  return absl::BytesToHexString(buf);
}

// Columns read by JobFromRow, in order.
constexpr char kJobColumns[] =
    "seq, id, owner, kind, state, priority, max_attempts, attempt, spec, created_us, "
    "started_us, finished_us, error, progress_step, progress_total, "
    "(SELECT group_concat(dep_id, ',') FROM job_deps WHERE job_seq = jobs.seq)";

Job JobFromRow(const Stmt& st) {
  Job j;
  j.set_id(st.Text(1));
  j.set_owner(st.Text(2));
  j.set_kind(st.Text(3));
  j.set_state(static_cast<JobState>(st.Int(4)));
  j.mutable_spec()->ParseFromString(st.Blob(8));
  j.set_attempt(static_cast<int>(st.Int(7)));
  *j.mutable_created_at() = ToTimestamp(st.Int(9));
  if (st.Int(10) != 0) *j.mutable_started_at() = ToTimestamp(st.Int(10));
  if (st.Int(11) != 0) *j.mutable_finished_at() = ToTimestamp(st.Int(11));
  j.set_error(st.Text(12));
  j.set_progress_step(st.Int(13));
  j.set_progress_total(st.Int(14));
  if (!st.IsNull(15)) {
    for (absl::string_view d : absl::StrSplit(st.Text(15), ',', absl::SkipEmpty())) {
      j.add_depends_on(std::string(d));
    }
  }
  return j;
}

// One job by id, on the writer's connection or a reader's.
absl::StatusOr<Job> ReadJob(Db& db, const std::string& id) {
  static const std::string kSql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?");
  auto st = db.Cached(kSql);
  if (!st.ok()) return st.status();
  (*st)->Bind(1, id);
  absl::StatusOr<bool> row = (*st)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  Job j = JobFromRow(**st);
  (*st)->Reset();
  return j;
}

// A job's first event. It is implied by the job's row instead of stored: a
// submit is acknowledged only once its commit is on disk, and each B-tree a
// transaction touches adds a page to that commit (the events table's random
// keys made this one of the dearer pages).
JobEvent SubmittedEvent(const std::string& job_id, int64_t created_us) {
  JobEvent e;
  e.set_job_id(job_id);
  e.set_seq(1);
  e.set_attempt(0);
  *e.mutable_time() = ToTimestamp(created_us);
  e.mutable_state()->set_state(loupe::v1::QUEUED);
  e.mutable_state()->set_message("submitted");
  return e;
}

// Runs a statement kept prepared on `db`: the writer's per-transaction and
// per-write statements would otherwise be compiled thousands of times a second.
absl::Status RunCached(Db& db, const std::string& sql) {
  absl::StatusOr<Stmt*> st = db.Cached(sql);
  if (!st.ok()) return st.status();
  absl::Status s = (*st)->Run();
  (*st)->Reset();
  return s;
}

}  // namespace

bool LooksLikeJobId(absl::string_view id) {
  return id.size() == 12 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The writer's view of one group-commit transaction.
class Store::Txn {
 public:
  explicit Txn(Db& db) : db(db) {}
  Db& db;
  int64_t now_us = NowMicros();
  std::vector<JobEvent> events;

  absl::StatusOr<Stmt*> Sql(const std::string& sql) { return db.Cached(sql); }

  // Appends `e` to the job's event log with the next sequence number.
  absl::Status Emit(const std::string& job_id, int attempt, JobEvent e) {
    auto st = Sql("UPDATE jobs SET last_event_seq = last_event_seq + 1 WHERE id = ? "
                  "RETURNING last_event_seq");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, job_id);
    absl::StatusOr<bool> row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    const int64_t seq = (*st)->Int(0);
    (*st)->Reset();
    e.set_job_id(job_id);
    e.set_seq(seq);
    e.set_attempt(attempt);
    *e.mutable_time() = ToTimestamp(now_us);
    auto ins = Sql("INSERT INTO events(job_id, seq, event) VALUES (?, ?, ?)");
    if (!ins.ok()) return ins.status();
    (*ins)->Bind(1, job_id).Bind(2, seq).BindBlob(3, e.SerializeAsString());
    if (absl::Status s = (*ins)->Run(); !s.ok()) return s;
    events.push_back(std::move(e));
    return absl::OkStatus();
  }

  absl::Status EmitState(const std::string& job_id, int attempt, JobState state,
                         std::string message) {
    JobEvent e;
    e.mutable_state()->set_state(state);
    e.mutable_state()->set_message(std::move(message));
    return Emit(job_id, attempt, std::move(e));
  }

  absl::StatusOr<Job> LoadJob(const std::string& id) { return ReadJob(db, id); }

  // Ends a job that is not running (QUEUED, or RUNNING after a restart).
  absl::Status EndJob(const std::string& id, int attempt, JobState state, const std::string& error) {
    auto st = Sql("UPDATE jobs SET state = ?, error = ?, finished_us = ? WHERE id = ?");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, static_cast<int64_t>(state)).Bind(2, error).Bind(3, now_us).Bind(4, id);
    if (absl::Status s = (*st)->Run(); !s.ok()) return s;
    if (absl::Status s = EmitState(id, attempt, state, error); !s.ok()) return s;
    if (state != loupe::v1::SUCCEEDED) return FailDependents(id, state);
    return absl::OkStatus();
  }

  // Queued jobs waiting on a job that will never succeed fail too, transitively.
  absl::Status FailDependents(const std::string& id, JobState why) {
    std::vector<std::pair<std::string, int>> dependents;
    {
      auto st = Sql("SELECT j.id, j.attempt FROM job_deps d JOIN jobs j ON j.seq = d.job_seq "
                    "WHERE d.dep_id = ? AND j.state = ?");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, id).Bind(2, static_cast<int64_t>(loupe::v1::QUEUED));
      while (true) {
        absl::StatusOr<bool> row = (*st)->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        dependents.emplace_back((*st)->Text(0), static_cast<int>((*st)->Int(1)));
      }
      (*st)->Reset();
    }
    for (const auto& [dep_id, attempt] : dependents) {
      std::string error = absl::StrCat("input job ", id, " ",
                                       why == loupe::v1::CANCELLED ? "was cancelled" : "failed",
                                       "; this job cannot run");
      if (absl::Status s = EndJob(dep_id, attempt, loupe::v1::FAILED, error); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
};

class Store::Reader {
 public:
  Reader(Store* store, std::unique_ptr<Db> db) : store_(store), db_(std::move(db)) {}
  Reader(Reader&&) = default;
  ~Reader() {
    if (db_ == nullptr) return;
    std::lock_guard<std::mutex> l(store_->readers_mu_);
    if (store_->idle_readers_.size() < kMaxIdleReaders) {
      store_->idle_readers_.push_back(std::move(db_));
    }
  }
  Db& db() { return *db_; }

 private:
  Store* store_;
  std::unique_ptr<Db> db_;
};

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(path);
  if (!db.ok()) return db.status();
  if (absl::Status s = Migrate(**db); !s.ok()) return s;
  return std::unique_ptr<Store>(new Store(path, std::move(*db)));
}

Store::Store(std::string path, std::unique_ptr<Db> writer)
    : path_(std::move(path)), writer_db_(std::move(writer)) {
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "loupe-writer");
    WriterLoop();
  });
  completer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "loupe-complete");
    CompletionLoop();
  });
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> l(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  writer_.join();
  {
    std::lock_guard<std::mutex> l(completion_mu_);
    completion_stopping_ = true;
  }
  completion_cv_.notify_all();
  completer_.join();
}

void Store::CompletionLoop() {
  while (true) {
    std::function<void()> next;
    {
      std::unique_lock<std::mutex> l(completion_mu_);
      completion_cv_.wait(
          l, [this] { return !completing_ && (completion_stopping_ || !completions_.empty()); });
      if (completions_.empty()) return;
      next = std::move(completions_.front());
      completions_.pop_front();
      completing_ = true;
    }
    next();
    std::lock_guard<std::mutex> l(completion_mu_);
    completing_ = false;
  }
}

void Store::SetEventListener(EventListener listener) { listener_ = std::move(listener); }

void Store::Enqueue(Write w, bool caller_may_commit) {
  std::unique_lock<std::mutex> l(queue_mu_);
  if (stopping_) {
    l.unlock();
    if (w.done) w.done(absl::UnavailableError("store is shutting down"));
    return;
  }
  queue_.push_back(std::move(w));
  if (!caller_may_commit || committing_) {
    l.unlock();
    queue_cv_.notify_one();
    return;
  }
  // Nothing is being committed: commit on this thread rather than wake the
  // writer, which saves a thread hand-off on every lone write. Anything that
  // queues meanwhile is left to the writer thread, so a caller commits at
  // most one batch.
  committing_ = true;
  std::vector<Write> batch = TakeBatchLocked();
  l.unlock();
  std::function<void()> completion = CommitBatch(std::move(batch));
  const bool run_here = ClaimOrQueueCompletion(completion);
  l.lock();
  committing_ = false;
  const bool more = !queue_.empty();
  l.unlock();
  if (more) queue_cv_.notify_one();
  if (run_here) RunClaimedCompletion(completion);
}

absl::Status Store::WriteSync(std::function<absl::Status(Txn&)> apply) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> f = promise->get_future();
  Enqueue({std::move(apply), [promise](absl::Status s) { promise->set_value(std::move(s)); }},
          /*caller_may_commit=*/true);
  return f.get();
}

std::vector<Store::Write> Store::TakeBatchLocked() {
  std::vector<Write> batch;
  while (!queue_.empty() && batch.size() < kMaxBatch) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

void Store::WriterLoop() {
  while (true) {
    std::vector<Write> batch;
    {
      std::unique_lock<std::mutex> l(queue_mu_);
      queue_cv_.wait(l, [this] { return !committing_ && (stopping_ || !queue_.empty()); });
      if (queue_.empty()) return;  // stopping, and everything is committed
      committing_ = true;
      batch = TakeBatchLocked();
    }
    std::function<void()> completion = CommitBatch(std::move(batch));
    // The writer hands completions to the completion thread even when it is
    // idle: under load the next commit should not wait for thousands of
    // callbacks.
    {
      std::lock_guard<std::mutex> l(completion_mu_);
      completions_.push_back(std::move(completion));
    }
    completion_cv_.notify_one();
    std::lock_guard<std::mutex> l(queue_mu_);
    committing_ = false;
  }
}

std::function<void()> Store::CommitBatch(std::vector<Write> batch) {
  Txn txn(*writer_db_);
  absl::Status begin = RunCached(*writer_db_, "BEGIN IMMEDIATE");
  std::vector<absl::Status> results;
  results.reserve(batch.size());
  // A savepoint per write, so that one bad write does not undo its
  // neighbours; a lone write (the common case when idle) needs none: if it
  // fails, the whole transaction rolls back.
  const bool savepoints = batch.size() > 1;
  for (Write& w : batch) {
    if (!begin.ok()) {
      results.push_back(begin);
      continue;
    }
    size_t events_before = txn.events.size();
    absl::Status s = savepoints ? RunCached(*writer_db_, "SAVEPOINT w") : absl::OkStatus();
    if (s.ok()) s = w.apply(txn);
    if (s.ok()) {
      if (savepoints) s = RunCached(*writer_db_, "RELEASE w");
    } else if (savepoints) {
      (void)RunCached(*writer_db_, "ROLLBACK TO w");
      (void)RunCached(*writer_db_, "RELEASE w");
    }
    if (!s.ok()) txn.events.resize(events_before);
    results.push_back(s);
  }
  if (begin.ok() && !savepoints && !results[0].ok()) {
    (void)RunCached(*writer_db_, "ROLLBACK");
  } else if (begin.ok()) {
    absl::Status commit = RunCached(*writer_db_, "COMMIT");
    if (!commit.ok()) {
      (void)RunCached(*writer_db_, "ROLLBACK");
      txn.events.clear();
      for (auto& r : results) {
        if (r.ok()) r = commit;
      }
    }
  }
  auto finished = std::make_shared<std::vector<Write>>(std::move(batch));
  auto statuses = std::make_shared<std::vector<absl::Status>>(std::move(results));
  auto events = std::make_shared<std::vector<JobEvent>>(std::move(txn.events));
  return [this, finished, statuses, events] {
    if (listener_ && !events->empty()) listener_(*events);
    for (size_t i = 0; i < finished->size(); ++i) {
      if ((*finished)[i].done) (*finished)[i].done((*statuses)[i]);
    }
  };
}

// Called by the committing caller before it gives up committing_, so no later
// commit can queue its completion ahead of this one.
bool Store::ClaimOrQueueCompletion(std::function<void()>& completion) {
  {
    std::lock_guard<std::mutex> l(completion_mu_);
    if (!completing_ && completions_.empty()) {
      completing_ = true;
      return true;
    }
    completions_.push_back(std::move(completion));
  }
  completion_cv_.notify_one();
  return false;
}

void Store::RunClaimedCompletion(const std::function<void()>& completion) {
  completion();
  bool more;
  {
    std::lock_guard<std::mutex> l(completion_mu_);
    completing_ = false;
    more = !completions_.empty() || completion_stopping_;
  }
  if (more) completion_cv_.notify_one();
}

absl::StatusOr<Store::Reader> Store::AcquireReader() {
  {
    std::lock_guard<std::mutex> l(readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<Db> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return Reader(this, std::move(db));
    }
  }
  absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(path_);
  if (!db.ok()) return db.status();
  return Reader(this, std::move(*db));
}

absl::Status Store::TEST_Write(const std::string& sql, bool then_fail) {
  return WriteSync([sql, then_fail](Txn& t) -> absl::Status {
    if (absl::Status s = t.db.Exec(sql); !s.ok()) return s;
    return then_fail ? absl::AbortedError("failed on purpose") : absl::OkStatus();
  });
}

absl::Status Store::Flush() {
  return WriteSync([](Txn&) { return absl::OkStatus(); });
}

// --- users and tokens ---------------------------------------------------------

absl::StatusOr<std::string> Store::CreateToken(const std::string& user, bool admin) {
  if (user.empty() || user.size() > 64 || user == "*") {
    return absl::InvalidArgumentError("user name must be 1-64 characters and not '*'");
  }
  std::string token = absl::StrCat("loupe_", RandomHex(24));
  std::string hash = Sha256::Of(token);
  absl::Status s = WriteSync([&](Txn& t) -> absl::Status {
    auto st = t.Sql("INSERT INTO users(name, admin, created_us) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET admin = max(admin, excluded.admin)");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, user).Bind(2, admin ? 1 : 0).Bind(3, t.now_us);
    if (absl::Status r = (*st)->Run(); !r.ok()) return r;
    auto tk = t.Sql("INSERT INTO tokens(hash, user, created_us) VALUES (?, ?, ?)");
    if (!tk.ok()) return tk.status();
    (*tk)->Bind(1, hash).Bind(2, user).Bind(3, t.now_us);
    return (*tk)->Run();
  });
  if (!s.ok()) return s;
  return token;
}

absl::StatusOr<User> Store::UserForTokenHash(const std::string& token_hash) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached(
      "SELECT u.name, u.admin FROM tokens t JOIN users u ON u.name = t.user WHERE t.hash = ?");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, token_hash);
  absl::StatusOr<bool> row = (*st)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError("unknown token");
  User u{(*st)->Text(0), (*st)->Int(1) != 0};
  (*st)->Reset();
  return u;
}

// --- jobs -------------------------------------------------------------------

void Store::SubmitJob(NewJob job, std::function<void(absl::StatusOr<SubmitOutcome>)> done) {
  auto outcome = std::make_shared<SubmitOutcome>();
  auto shared_job = std::make_shared<NewJob>(std::move(job));
  Enqueue(
      {[outcome, shared_job](Txn& t) -> absl::Status {
         const NewJob& nj = *shared_job;
         const std::string& key = nj.spec.idempotency_key();
         if (!key.empty()) {
           auto st = t.Sql("SELECT id FROM jobs WHERE owner = ? AND idempotency_key = ?");
           if (!st.ok()) return st.status();
           (*st)->Bind(1, nj.owner).Bind(2, key);
           absl::StatusOr<bool> row = (*st)->Step();
           if (!row.ok()) return row.status();
           if (*row) {
             std::string id = (*st)->Text(0);
             (*st)->Reset();
             absl::StatusOr<Job> j = t.LoadJob(id);
             if (!j.ok()) return j.status();
             outcome->job = std::move(*j);
             outcome->existing = true;
             return absl::OkStatus();
           }
           (*st)->Reset();
         }
         auto ins = t.Sql(
             "INSERT INTO jobs(id, owner, kind, state, priority, max_attempts, spec, "
             "idempotency_key, created_us, last_event_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) "
             "RETURNING seq");
         if (!ins.ok()) return ins.status();
         std::string id;
         int64_t seq = 0;
         for (int tries = 0;; ++tries) {
           id = RandomHex(6);
           (*ins)->Bind(1, id).Bind(2, nj.owner).Bind(3, nj.kind)
               .Bind(4, static_cast<int64_t>(loupe::v1::QUEUED))
               .Bind(5, nj.spec.priority()).Bind(6, nj.spec.max_attempts())
               .BindBlob(7, nj.spec.SerializeAsString());
           if (key.empty()) (*ins)->BindNull(8); else (*ins)->Bind(8, key);
           (*ins)->Bind(9, t.now_us);
           absl::StatusOr<bool> row = (*ins)->Step();
           if (row.ok()) {
             seq = (*ins)->Int(0);
             (*ins)->Reset();
             break;
           }
           (*ins)->Reset();
           // A random id collided with an existing one: draw again.
           if (!absl::IsAlreadyExists(row.status()) || tries > 5) return row.status();
         }
         for (const auto& [k, v] : nj.spec.labels()) {
           auto st = t.Sql("INSERT INTO job_labels(job_seq, key, value) VALUES (?, ?, ?)");
           if (!st.ok()) return st.status();
           (*st)->Bind(1, seq).Bind(2, k).Bind(3, v);
           if (absl::Status s = (*st)->Run(); !s.ok()) return s;
         }
         for (const std::string& dep : nj.depends_on) {
           auto st = t.Sql("INSERT OR IGNORE INTO job_deps(job_seq, dep_id) VALUES (?, ?)");
           if (!st.ok()) return st.status();
           (*st)->Bind(1, seq).Bind(2, dep);
           if (absl::Status s = (*st)->Run(); !s.ok()) return s;
         }
         // Published to watchers like any event; readers derive it from the row.
         t.events.push_back(SubmittedEvent(id, t.now_us));
         Job& j = outcome->job;
         j.set_id(id);
         j.set_kind(nj.kind);
         j.set_owner(nj.owner);
         j.set_state(loupe::v1::QUEUED);
         *j.mutable_spec() = nj.spec;
         *j.mutable_created_at() = ToTimestamp(t.now_us);
         for (const auto& d : nj.depends_on) j.add_depends_on(d);
         return absl::OkStatus();
       },
       [outcome, done = std::move(done)](absl::Status s) {
         if (!s.ok()) {
           done(s);
         } else {
           done(std::move(*outcome));
         }
       }},
      /*caller_may_commit=*/true);
}

absl::StatusOr<SubmitOutcome> Store::SubmitJobSync(NewJob job) {
  std::promise<absl::StatusOr<SubmitOutcome>> p;
  auto f = p.get_future();
  SubmitJob(std::move(job), [&p](absl::StatusOr<SubmitOutcome> r) { p.set_value(std::move(r)); });
  return f.get();
}

absl::StatusOr<Job> Store::GetJob(const std::string& id) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  return ReadJob(r->db(), id);
}

absl::StatusOr<JobPage> Store::ListJobs(const JobFilter& f) {
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE 1");
  if (f.owner) absl::StrAppend(&sql, " AND owner = :owner");
  if (f.state != loupe::v1::JOB_STATE_UNSPECIFIED) absl::StrAppend(&sql, " AND state = :state");
  if (!f.kind.empty()) absl::StrAppend(&sql, " AND kind = :kind");
  if (!f.label_key.empty()) {
    absl::StrAppend(&sql, " AND seq IN (SELECT job_seq FROM job_labels WHERE key = :lk",
                    f.label_value.empty() ? "" : " AND value = :lv", ")");
  }
  if (f.before_seq > 0) absl::StrAppend(&sql, " AND seq < :before");
  absl::StrAppend(&sql, " ORDER BY seq DESC LIMIT :limit");
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached(sql);
  if (!st.ok()) return st.status();
  // Named parameters are numbered in order of appearance; bind positionally.
  int i = 1;
  if (f.owner) (*st)->Bind(i++, *f.owner);
  if (f.state != loupe::v1::JOB_STATE_UNSPECIFIED) (*st)->Bind(i++, static_cast<int64_t>(f.state));
  if (!f.kind.empty()) (*st)->Bind(i++, f.kind);
  if (!f.label_key.empty()) {
    (*st)->Bind(i++, f.label_key);
    if (!f.label_value.empty()) (*st)->Bind(i++, f.label_value);
  }
  if (f.before_seq > 0) (*st)->Bind(i++, f.before_seq);
  int limit = std::clamp(f.limit, 1, 1000);
  (*st)->Bind(i++, static_cast<int64_t>(limit + 1));
  JobPage page;
  int64_t last_seq = 0;
  while (true) {
    absl::StatusOr<bool> row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (static_cast<int>(page.jobs.size()) == limit) {
      page.next_before_seq = last_seq;
      break;
    }
    last_seq = (*st)->Int(0);
    page.jobs.push_back(JobFromRow(**st));
  }
  (*st)->Reset();
  return page;
}

absl::StatusOr<std::optional<Job>> Store::ClaimNext() {
  std::optional<Job> claimed;
  absl::Status s = WriteSync([&claimed](Txn& t) -> absl::Status {
    auto st = t.Sql(
        "SELECT id, attempt FROM jobs WHERE state = ? AND NOT EXISTS ("
        "  SELECT 1 FROM job_deps d JOIN jobs p ON p.id = d.dep_id"
        "  WHERE d.job_seq = jobs.seq AND p.state != ?) "
        "ORDER BY priority DESC, seq LIMIT 1");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, static_cast<int64_t>(loupe::v1::QUEUED))
        .Bind(2, static_cast<int64_t>(loupe::v1::SUCCEEDED));
    absl::StatusOr<bool> row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    std::string id = (*st)->Text(0);
    int attempt = static_cast<int>((*st)->Int(1)) + 1;
    (*st)->Reset();
    auto up = t.Sql(
        "UPDATE jobs SET state = ?, attempt = ?, started_us = ?, finished_us = 0, "
        "progress_step = 0, progress_total = 0, error = '' WHERE id = ?");
    if (!up.ok()) return up.status();
    (*up)->Bind(1, static_cast<int64_t>(loupe::v1::RUNNING)).Bind(2, attempt)
        .Bind(3, t.now_us).Bind(4, id);
    if (absl::Status r = (*up)->Run(); !r.ok()) return r;
    if (absl::Status r = t.EmitState(id, attempt, loupe::v1::RUNNING,
                                     absl::StrCat("attempt ", attempt, " started"));
        !r.ok())
      return r;
    absl::StatusOr<Job> j = t.LoadJob(id);
    if (!j.ok()) return j.status();
    claimed = std::move(*j);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return claimed;
}

absl::StatusOr<Job> Store::FinishAttempt(const std::string& id, int attempt,
                                         const AttemptOutcome& outcome) {
  Job result;
  absl::Status s = WriteSync([&](Txn& t) -> absl::Status {
    absl::StatusOr<Job> j = t.LoadJob(id);
    if (!j.ok()) return j.status();
    if (j->state() != loupe::v1::RUNNING || j->attempt() != attempt) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", id, " is not running attempt ", attempt, " (state ",
          loupe::v1::JobState_Name(j->state()), ", attempt ", j->attempt(), ")"));
    }
    if (outcome.interrupted) {
      auto up = t.Sql("UPDATE jobs SET state = ?, attempt = attempt - 1 WHERE id = ?");
      if (!up.ok()) return up.status();
      (*up)->Bind(1, static_cast<int64_t>(loupe::v1::QUEUED)).Bind(2, id);
      if (absl::Status e = (*up)->Run(); !e.ok()) return e;
      if (absl::Status e = t.EmitState(id, attempt, loupe::v1::QUEUED,
                                       absl::StrCat("attempt ", attempt, " ", outcome.error,
                                                    "; it will run again and not count"));
          !e.ok())
        return e;
      absl::StatusOr<Job> after = t.LoadJob(id);
      if (!after.ok()) return after.status();
      result = std::move(*after);
      return absl::OkStatus();
    }
    loupe::v1::JobResult r;
    r.set_job_id(id);
    r.set_state(outcome.state);
    r.set_error(outcome.error);
    r.set_attempt(attempt);
    for (const auto& [k, v] : outcome.metrics) (*r.mutable_metrics())[k] = v;
    for (const auto& a : outcome.artifacts) {
      *r.add_artifacts() = a;
      auto b = t.Sql("INSERT OR IGNORE INTO blobs(sha256, size, created_us) VALUES (?, ?, ?)");
      if (!b.ok()) return b.status();
      (*b)->Bind(1, a.sha256()).Bind(2, a.size()).Bind(3, t.now_us);
      if (absl::Status e = (*b)->Run(); !e.ok()) return e;
      auto ins = t.Sql(
          "INSERT OR REPLACE INTO artifacts(job_id, attempt, name, sha256, size, media_type) "
          "VALUES (?, ?, ?, ?, ?, ?)");
      if (!ins.ok()) return ins.status();
      (*ins)->Bind(1, id).Bind(2, attempt).Bind(3, a.name()).Bind(4, a.sha256())
          .Bind(5, a.size()).Bind(6, a.media_type());
      if (absl::Status e = (*ins)->Run(); !e.ok()) return e;
    }
    auto res = t.Sql("INSERT OR REPLACE INTO results(job_id, attempt, result) VALUES (?, ?, ?)");
    if (!res.ok()) return res.status();
    (*res)->Bind(1, id).Bind(2, attempt).BindBlob(3, r.SerializeAsString());
    if (absl::Status e = (*res)->Run(); !e.ok()) return e;

    if (outcome.state == loupe::v1::QUEUED) {
      // A retry: the failed attempt's error stays visible until the next one starts.
      auto up = t.Sql("UPDATE jobs SET state = ?, error = ? WHERE id = ?");
      if (!up.ok()) return up.status();
      (*up)->Bind(1, static_cast<int64_t>(loupe::v1::QUEUED)).Bind(2, outcome.error).Bind(3, id);
      if (absl::Status e = (*up)->Run(); !e.ok()) return e;
      if (absl::Status e = t.EmitState(id, attempt, loupe::v1::QUEUED,
                                       absl::StrCat("attempt ", attempt, " failed (", outcome.error,
                                                    "); queued for attempt ", attempt + 1));
          !e.ok())
        return e;
    } else {
      if (absl::Status e = t.EndJob(id, attempt, outcome.state, outcome.error); !e.ok()) return e;
    }
    absl::StatusOr<Job> after = t.LoadJob(id);
    if (!after.ok()) return after.status();
    result = std::move(*after);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return result;
}

absl::StatusOr<CancelOutcome> Store::CancelJob(const std::string& id) {
  CancelOutcome out;
  absl::Status s = WriteSync([&](Txn& t) -> absl::Status {
    absl::StatusOr<Job> j = t.LoadJob(id);
    if (!j.ok()) return j.status();
    if (j->state() == loupe::v1::QUEUED) {
      if (absl::Status e = t.EndJob(id, j->attempt(), loupe::v1::CANCELLED, "cancelled by user");
          !e.ok())
        return e;
    } else if (j->state() == loupe::v1::RUNNING) {
      auto up = t.Sql("UPDATE jobs SET cancel_requested = 1 WHERE id = ?");
      if (!up.ok()) return up.status();
      (*up)->Bind(1, id);
      if (absl::Status e = (*up)->Run(); !e.ok()) return e;
      JobEvent e;
      e.mutable_log()->set_text("cancel requested");
      if (absl::Status r = t.Emit(id, j->attempt(), std::move(e)); !r.ok()) return r;
      out.was_running = true;
    }
    absl::StatusOr<Job> after = t.LoadJob(id);
    if (!after.ok()) return after.status();
    out.job = std::move(*after);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<RecoveryReport> Store::RecoverInterrupted() {
  RecoveryReport report;
  absl::Status s = WriteSync([&](Txn& t) -> absl::Status {
    struct Row {
      std::string id;
      int attempt, max_attempts;
      bool cancel;
    };
    std::vector<Row> rows;
    auto st = t.Sql("SELECT id, attempt, max_attempts, cancel_requested FROM jobs WHERE state = ?");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, static_cast<int64_t>(loupe::v1::RUNNING));
    while (true) {
      absl::StatusOr<bool> row = (*st)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      rows.push_back({(*st)->Text(0), static_cast<int>((*st)->Int(1)),
                      static_cast<int>((*st)->Int(2)), (*st)->Int(3) != 0});
    }
    (*st)->Reset();
    for (const Row& r : rows) {
      std::string why = absl::StrCat("the server stopped during attempt ", r.attempt);
      absl::Status e;
      if (r.cancel) {
        e = t.EndJob(r.id, r.attempt, loupe::v1::CANCELLED, "cancelled by user");
        ++report.cancelled;
      } else if (r.attempt < r.max_attempts) {
        auto up = t.Sql("UPDATE jobs SET state = ?, error = ? WHERE id = ?");
        if (!up.ok()) return up.status();
        (*up)->Bind(1, static_cast<int64_t>(loupe::v1::QUEUED)).Bind(2, why).Bind(3, r.id);
        e = (*up)->Run();
        if (e.ok()) {
          e = t.EmitState(r.id, r.attempt, loupe::v1::QUEUED,
                          absl::StrCat(why, "; queued for attempt ", r.attempt + 1));
        }
        ++report.requeued;
      } else {
        e = t.EndJob(r.id, r.attempt, loupe::v1::FAILED,
                     absl::StrCat(why, ", its last (max_attempts ", r.max_attempts, ")"));
        ++report.failed;
      }
      if (!e.ok()) return e;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return report;
}

void Store::AppendEvents(const std::string& job_id, int attempt, std::vector<JobEvent> events) {
  auto shared = std::make_shared<std::vector<JobEvent>>(std::move(events));
  Enqueue({[job_id, attempt, shared](Txn& t) -> absl::Status {
             for (JobEvent& e : *shared) {
               if (e.has_progress()) {
                 auto up = t.Sql("UPDATE jobs SET progress_step = ?, progress_total = ? "
                                 "WHERE id = ? AND attempt = ?");
                 if (!up.ok()) return up.status();
                 (*up)->Bind(1, e.progress().step()).Bind(2, e.progress().total())
                     .Bind(3, job_id).Bind(4, attempt);
                 if (absl::Status s = (*up)->Run(); !s.ok()) return s;
               }
               if (absl::Status s = t.Emit(job_id, attempt, std::move(e)); !s.ok()) return s;
             }
             return absl::OkStatus();
           },
           nullptr},
          /*caller_may_commit=*/false);
}

absl::StatusOr<std::vector<JobEvent>> Store::ReadEvents(const std::string& job_id,
                                                        int64_t after_seq, int limit) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached(
      "SELECT event FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, job_id).Bind(2, after_seq).Bind(3, static_cast<int64_t>(limit));
  std::vector<JobEvent> out;
  while (true) {
    absl::StatusOr<bool> row = (*st)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.emplace_back().ParseFromString((*st)->Blob(0));
  }
  (*st)->Reset();
  // The first event lives in the job's row (see SubmittedEvent); databases
  // written before that change still hold it as a row of their own.
  if (after_seq < 1 && limit > 0 && (out.empty() || out.front().seq() != 1)) {
    auto created = r->db().Cached("SELECT created_us FROM jobs WHERE id = ?");
    if (!created.ok()) return created.status();
    (*created)->Bind(1, job_id);
    absl::StatusOr<bool> row = (*created)->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      out.insert(out.begin(), SubmittedEvent(job_id, (*created)->Int(0)));
      if (static_cast<int>(out.size()) > limit) out.pop_back();
    }
    (*created)->Reset();
  }
  return out;
}

absl::StatusOr<loupe::v1::JobResult> Store::GetResult(const std::string& id) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached(
      "SELECT result FROM results WHERE job_id = ? ORDER BY attempt DESC LIMIT 1");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, id);
  absl::StatusOr<bool> row = (*st)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("job ", id, " has no result yet"));
  loupe::v1::JobResult res;
  res.ParseFromString((*st)->Blob(0));
  (*st)->Reset();
  return res;
}

absl::StatusOr<ArtifactRecord> Store::GetArtifact(const std::string& job_id,
                                                  const std::string& name) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached(
      "SELECT name, size, sha256, media_type FROM artifacts WHERE job_id = ? AND name = ? "
      "AND attempt = (SELECT max(attempt) FROM results WHERE job_id = ?)");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, job_id).Bind(2, name).Bind(3, job_id);
  absl::StatusOr<bool> row = (*st)->Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no artifact '", name, "'"));
  }
  ArtifactRecord rec;
  rec.artifact.set_name((*st)->Text(0));
  rec.artifact.set_size((*st)->Int(1));
  rec.artifact.set_sha256((*st)->Text(2));
  rec.artifact.set_media_type((*st)->Text(3));
  (*st)->Reset();
  return rec;
}

// --- datasets ---------------------------------------------------------------

absl::StatusOr<loupe::v1::Dataset> Store::AddDataset(const std::string& owner,
                                                     const std::string& name,
                                                     const std::string& sha256, int64_t size,
                                                     const std::string& media_type) {
  loupe::v1::Dataset ds;
  absl::Status s = WriteSync([&](Txn& t) -> absl::Status {
    auto b = t.Sql("INSERT OR IGNORE INTO blobs(sha256, size, created_us) VALUES (?, ?, ?)");
    if (!b.ok()) return b.status();
    (*b)->Bind(1, sha256).Bind(2, size).Bind(3, t.now_us);
    if (absl::Status e = (*b)->Run(); !e.ok()) return e;
    auto sel = t.Sql("SELECT id, name, size FROM datasets WHERE sha256 = ?");
    if (!sel.ok()) return sel.status();
    (*sel)->Bind(1, sha256);
    absl::StatusOr<bool> row = (*sel)->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      ds.set_id((*sel)->Text(0));
      ds.set_name((*sel)->Text(1));
      ds.set_size((*sel)->Int(2));
      ds.set_sha256(sha256);
      ds.set_deduplicated(true);
      (*sel)->Reset();
      return absl::OkStatus();
    }
    (*sel)->Reset();
    // Content-derived ids: the same bytes always get the same id.
    std::string id = sha256.substr(0, 16);
    auto ins = t.Sql(
        "INSERT INTO datasets(id, sha256, name, size, media_type, owner, created_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!ins.ok()) return ins.status();
    (*ins)->Bind(1, id).Bind(2, sha256).Bind(3, name).Bind(4, size).Bind(5, media_type)
        .Bind(6, owner).Bind(7, t.now_us);
    if (absl::Status e = (*ins)->Run(); !e.ok()) return e;
    ds.set_id(id);
    ds.set_name(name);
    ds.set_size(size);
    ds.set_sha256(sha256);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return ds;
}

absl::StatusOr<loupe::v1::Dataset> Store::GetDataset(const std::string& id) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  auto st = r->db().Cached("SELECT id, name, size, sha256 FROM datasets WHERE id = ?");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, id);
  absl::StatusOr<bool> row = (*st)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("dataset ", id, " not found"));
  loupe::v1::Dataset ds;
  ds.set_id((*st)->Text(0));
  ds.set_name((*st)->Text(1));
  ds.set_size((*st)->Int(2));
  ds.set_sha256((*st)->Text(3));
  (*st)->Reset();
  return ds;
}

}  // namespace loupe::store
