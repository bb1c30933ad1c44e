// Versioned schema of the job store and its migrations.
#ifndef LOUPE_SERVER_STORE_SCHEMA_H_
#define LOUPE_SERVER_STORE_SCHEMA_H_

#include "absl/status/status.h"
#include "server/store/sqlite.h"

namespace loupe::store {

// The newest schema version this build knows.
int LatestSchemaVersion();

// Brings `db` from whatever version it has (0 for a new file) to the latest,
// one migration per transaction. Refuses a database newer than this build.
absl::Status Migrate(Db& db);

// The version recorded in `db` (0 if none).
absl::StatusOr<int> SchemaVersion(Db& db);

}  // namespace loupe::store

#endif  // LOUPE_SERVER_STORE_SCHEMA_H_
