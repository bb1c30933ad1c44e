// Thin RAII wrappers over the SQLite C API that report errors as absl::Status.
//
// A Db owns one connection; a Stmt owns one prepared statement of that
// connection. Neither is thread-safe: each connection is used by one thread at
// a time (the store's writer thread, or a reader checked out of a pool).
#ifndef LOUPE_SERVER_STORE_SQLITE_H_
#define LOUPE_SERVER_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loupe::store {

class Db;

class Stmt {
 public:
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Stmt(const Stmt&) = delete;
  ~Stmt();

  // Binds are 1-based, as in SQLite.
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v);
  Stmt& Bind(int i, absl::string_view text);
  Stmt& Bind(int i, const char* text) { return Bind(i, absl::string_view(text)); }
  Stmt& BindBlob(int i, absl::string_view bytes);
  Stmt& BindNull(int i);

  // Advances: true with a row, false when done; errors as Status.
  absl::StatusOr<bool> Step();
  // Runs to completion, ignoring rows.
  absl::Status Run();
  void Reset();

  int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;
  std::string Blob(int col) const;
  bool IsNull(int col) const;

 private:
  friend class Db;
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if needed) with WAL, FULL sync, a busy timeout and
  // foreign keys on.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();

  absl::StatusOr<Stmt> Prepare(absl::string_view sql);
  // A prepared statement kept for reuse on this connection, already reset.
  absl::StatusOr<Stmt*> Cached(const std::string& sql);
  // Runs one or more statements without results.
  absl::Status Exec(absl::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  absl::Status Error(absl::string_view what) const;
  sqlite3* raw() { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::map<std::string, std::unique_ptr<Stmt>> cache_;
};

}  // namespace loupe::store

#endif  // LOUPE_SERVER_STORE_SQLITE_H_
