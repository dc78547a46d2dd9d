#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ferry/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ferry {

// A failed SQLite call (result code `rc`) as a Status: UNAVAILABLE for busy and I/O errors (retry later),
// RESOURCE_EXHAUSTED for a full disk, INTERNAL for the rest.
Status SqliteError(sqlite3* db, int rc);

// A prepared statement. Bind parameters are 1-based, columns 0-based. Not thread-safe.
class SqliteStmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStmt();
  SqliteStmt(SqliteStmt const&) = delete;
  SqliteStmt& operator=(SqliteStmt const&) = delete;

  SqliteStmt& Bind(int index, int64_t value);
  SqliteStmt& Bind(int index, std::string_view text);
  SqliteStmt& BindBlob(int index, std::string_view bytes);
  SqliteStmt& BindNull(int index);

  // Steps once: true with a row, false when done. Errors come back as a Status.
  StatusOr<bool> Step();
  // Steps to the end, for statements that return no rows.
  Status Exec();
  void Reset();

  [[nodiscard]] int64_t Int(int col) const;
  [[nodiscard]] std::string Text(int col) const;
  [[nodiscard]] bool IsNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// A cached statement in use; resets it when it goes out of scope, so no read transaction outlives its caller
// (a statement left mid-step would pin the reader to an old WAL snapshot).
class ScopedStmt {
 public:
  explicit ScopedStmt(SqliteStmt* stmt) : stmt_(stmt) {}
  ScopedStmt(ScopedStmt&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  ScopedStmt& operator=(ScopedStmt&&) = delete;
  ~ScopedStmt() {
    if (stmt_ != nullptr) stmt_->Reset();
  }
  SqliteStmt* operator->() const { return stmt_; }
  SqliteStmt& operator*() const { return *stmt_; }

 private:
  SqliteStmt* stmt_;
};

// One SQLite connection with a cache of prepared statements. Not thread-safe: one owner thread at a time.
class SqliteDb {
 public:
  static StatusOr<std::unique_ptr<SqliteDb>> Open(std::string const& path);
  ~SqliteDb();

  Status Exec(std::string_view sql);
  // A cached statement, reset and ready to bind. `sql` must be a string literal: the cache is keyed by address.
  StatusOr<ScopedStmt> Prepare(char const* sql);
  [[nodiscard]] int64_t LastInsertRowId() const;
  [[nodiscard]] int Changes() const;
  [[nodiscard]] Status Error(std::string_view what) const;
  // For a background connection: every `vm_steps` steps of SQLite's virtual machine, the thread yields its core
  // (sched_yield) to any thread waiting for it, so a long batch or DELETE runs in slices instead of holding a core
  // for milliseconds while the event loop waits behind it.
  void YieldEvery(int vm_steps);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<char const*, std::unique_ptr<SqliteStmt>> cache_;
};

// Ids split into runs of consecutive values, sorted and without repeats. A statement over many rows by primary
// key takes each run of kMinRangeRun or more as one `BETWEEN`, which SQLite walks along the key, and the rest in
// `IN (...)` lists, which it first sorts into a temporary b-tree: that costs about 0.3 µs a row more (measured
// for a lease's UPDATE and an ack's DELETE: docs/performance.md, "Consume + ack CPU"). A subscriber's leases and
// acks are mostly runs: message ids are handed out in publish order.
struct IdRuns {
  static constexpr std::size_t kMinRangeRun = 4;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // first, last
  std::vector<int64_t> singles;
};
IdRuns SplitIntoRuns(std::vector<int64_t> ids);

// Rows per multi-row statement: SQLite's per-statement overhead (halt, reset, statement journal) costs more than
// the row work itself when writing one small row per statement.
inline constexpr int kRowsPerStatement = 64;

// One statement over the rows `ids` name, as IdRuns says: `range(low, high)` for each run, then `list(chunk)` for
// each chunk of at most kRowsPerStatement of the other ids. Stops at the first error.
template <typename Range, typename List>
Status ForIdRuns(std::vector<int64_t> const& ids, Range&& range, List&& list) {
  IdRuns runs = SplitIntoRuns(ids);
  for (auto [low, high] : runs.ranges) {
    if (Status st = range(low, high); !st.ok()) return st;
  }
  for (std::size_t first = 0; first < runs.singles.size(); first += kRowsPerStatement) {
    std::size_t n = std::min<std::size_t>(kRowsPerStatement, runs.singles.size() - first);
    if (Status st = list(std::span<int64_t const>(runs.singles.data() + first, n)); !st.ok()) return st;
  }
  return OkStatus();
}

// The texts of one statement for 1..kRowsPerStatement rows, built once: `head` followed by `rows` copies of
// `row` joined by `sep`, then `tail`. The prepared-statement cache keys on their stable addresses.
class MultiRowSql {
 public:
  MultiRowSql(std::string_view head, std::string_view row, std::string_view sep, std::string_view tail)
      : sql_(kRowsPerStatement + 1) {
    for (int n = 1; n <= kRowsPerStatement; ++n) {
      std::string sql(head);
      for (int i = 0; i < n; ++i) {
        if (i > 0) sql += sep;
        sql += row;
      }
      sql += tail;
      sql_[static_cast<std::size_t>(n)] = std::move(sql);
    }
  }
  [[nodiscard]] char const* For(int rows) const { return sql_[static_cast<std::size_t>(rows)].c_str(); }

 private:
  std::vector<std::string> sql_;
};

}  // namespace ferry
