#include "server/store/schema.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace loupe::store {
namespace {

// Migration i (1-based) takes the schema from version i-1 to i. Never edit a
// migration that has shipped; append a new one.
const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> kMigrations = {
      // 1: the first schema.
      R"sql(
CREATE TABLE users (
  name TEXT PRIMARY KEY,
  admin INTEGER NOT NULL DEFAULT 0,
  created_us INTEGER NOT NULL
);
CREATE TABLE tokens (
  hash TEXT PRIMARY KEY,            -- hex sha256 of the token; the token itself is never stored
  user TEXT NOT NULL REFERENCES users(name),
  created_us INTEGER NOT NULL
);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  kind TEXT NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  spec BLOB NOT NULL,                      -- loupe.v1.JobSpec, defaults applied
  idempotency_key TEXT,
  created_us INTEGER NOT NULL,
  started_us INTEGER NOT NULL DEFAULT 0,
  finished_us INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  progress_step INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  last_event_seq INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(owner, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_queue ON jobs(state, priority DESC, seq);
CREATE INDEX jobs_owner ON jobs(owner, seq);
CREATE TABLE job_labels (
  job_seq INTEGER NOT NULL REFERENCES jobs(seq),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_seq, key)
) WITHOUT ROWID;
CREATE INDEX job_labels_kv ON job_labels(key, value);
CREATE TABLE job_deps (
  job_seq INTEGER NOT NULL REFERENCES jobs(seq),
  dep_id TEXT NOT NULL,
  PRIMARY KEY (job_seq, dep_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_dep ON job_deps(dep_id);
CREATE TABLE events (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event BLOB NOT NULL,                     -- loupe.v1.JobEvent
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE results (
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  result BLOB NOT NULL,                    -- loupe.v1.JobResult
  PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
CREATE TABLE blobs (
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  created_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE artifacts (
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL REFERENCES blobs(sha256),
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  PRIMARY KEY (job_id, attempt, name)
) WITHOUT ROWID;
CREATE TABLE datasets (
  id TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE REFERENCES blobs(sha256),
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  owner TEXT NOT NULL,
  created_us INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
  };
  return kMigrations;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> SchemaVersion(Db& db) {
  auto st = db.Prepare("PRAGMA user_version");
  if (!st.ok()) return st.status();
  auto row = st->Step();
  if (!row.ok()) return row.status();
  return static_cast<int>(st->Int(0));
}

absl::Status Migrate(Db& db) {
  // IMMEDIATE: two processes opening a new data dir at once (server and
  // `token create`) must not both run migration 1.
  if (absl::Status s = db.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::StatusOr<int> version = SchemaVersion(db);
  if (!version.ok()) {
    (void)db.Exec("ROLLBACK");
    return version.status();
  }
  if (*version > LatestSchemaVersion()) {
    (void)db.Exec("ROLLBACK");
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", *version, " is newer than this loupe-server (",
        LatestSchemaVersion(), "); upgrade the server"));
  }
  for (int v = *version; v < LatestSchemaVersion(); ++v) {
    absl::Status s = db.Exec(Migrations()[v]);
    if (s.ok()) s = db.Exec(absl::StrCat("PRAGMA user_version = ", v + 1));
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return absl::InternalError(absl::StrCat("migration to schema ", v + 1, " failed: ", s.message()));
    }
  }
  return db.Exec("COMMIT");
}

}  // namespace loupe::store
