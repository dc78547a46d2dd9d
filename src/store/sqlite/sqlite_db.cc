#include "store/sqlite/sqlite_db.h"

#include <sched.h>

#include <algorithm>

#include <sqlite3.h>

namespace ferry {

// A failed SQLite call as a Status whose code says what a client can do: retry later (busy, an I/O error),
// free space (a full disk), or nothing (anything else is a bug or corruption).
Status SqliteError(sqlite3* db, int rc) {
  std::string message = std::string("sqlite: ") + sqlite3_errmsg(db);
  switch (rc & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
      return Status(StatusCode::kUnavailable, message);
    case SQLITE_FULL:
      return Status(StatusCode::kResourceExhausted, message);
    default:
      return Status(StatusCode::kInternal, message);
  }
}


SqliteStmt::~SqliteStmt() { sqlite3_finalize(stmt_); }

SqliteStmt& SqliteStmt::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

SqliteStmt& SqliteStmt::Bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStmt& SqliteStmt::BindBlob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStmt& SqliteStmt::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

StatusOr<bool> SqliteStmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, rc);
}

Status SqliteStmt::Exec() {
  while (true) {
    auto row = Step();
    if (!row.ok()) {
      sqlite3_reset(stmt_);
      return row.status();
    }
    if (!*row) break;
  }
  sqlite3_reset(stmt_);
  return OkStatus();
}

void SqliteStmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteStmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string SqliteStmt::Text(int col) const {
  auto const* p = static_cast<char const*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

bool SqliteStmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(std::string const& path) {
  // No memory statistics: with them every allocation SQLite makes takes one process-wide mutex, which was about a
  // tenth of the execution log writer's CPU. Nothing reads them. It must be set before SQLite initialises; when
  // something else initialised it first the call fails harmlessly.
  static int const kNoMemStatus = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)kNoMemStatus;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return UnavailableError("cannot open database \"" + path + "\": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

void SqliteDb::YieldEvery(int vm_steps) {
  sqlite3_progress_handler(
      db_, vm_steps,
      [](void*) {
        sched_yield();
        return 0;  // go on
      },
      nullptr);
}

SqliteDb::~SqliteDb() {
  cache_.clear();
  sqlite3_close(db_);
}

Status SqliteDb::Exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
    sqlite3_free(err);
    return SqliteError(db_, rc);
  }
  return OkStatus();
}

StatusOr<ScopedStmt> SqliteDb::Prepare(char const* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->Reset();
    return ScopedStmt(it->second.get());
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return Error("prepare");
  }
  auto [pos, _] = cache_.emplace(sql, std::make_unique<SqliteStmt>(db_, stmt));
  return ScopedStmt(pos->second.get());
}

int64_t SqliteDb::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int SqliteDb::Changes() const { return sqlite3_changes(db_); }

Status SqliteDb::Error(std::string_view what) const {
  return InternalError("sqlite " + std::string(what) + ": " + sqlite3_errmsg(db_));
}

IdRuns SplitIntoRuns(std::vector<int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  IdRuns out;
  for (std::size_t first = 0; first < ids.size();) {
    std::size_t last = first;
    while (last + 1 < ids.size() && ids[last + 1] == ids[last] + 1) ++last;
    if (last - first + 1 >= IdRuns::kMinRangeRun) {
      out.ranges.emplace_back(ids[first], ids[last]);
    } else {
      out.singles.insert(out.singles.end(), ids.begin() + static_cast<std::ptrdiff_t>(first),
                         ids.begin() + static_cast<std::ptrdiff_t>(last) + 1);
    }
    first = last + 1;
  }
  return out;
}

}  // namespace ferry
