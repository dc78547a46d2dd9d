// The execution log's SQLite backend: executions.db beside the store, written by the buffer's one thread.
#include <algorithm>
#include <filesystem>
#include <mutex>

#include "common/status_macros.h"
#include "store/execution_log.h"
#include "store/execution_log_buffer.h"
#include "store/sqlite/sqlite_db.h"

namespace ferry {
namespace {

constexpr char const* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS executions(
  execution_id TEXT PRIMARY KEY,
  function TEXT NOT NULL,
  trigger TEXT NOT NULL,
  message_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  status TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_function ON executions(function, start_ms);
CREATE INDEX IF NOT EXISTS executions_by_message ON executions(message_id) WHERE message_id <> '';
CREATE TABLE IF NOT EXISTS logs(
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  function TEXT NOT NULL,
  execution_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  severity TEXT NOT NULL,
  message TEXT NOT NULL
);
-- One index: a query for one execution walks its function's newest lines, where executions asked about are.
CREATE INDEX IF NOT EXISTS logs_by_function ON logs(function, seq);
)sql";

// The writer yields its core about every 60 µs of statement work (measured: a yield each 31 rows written, a row
// about 2 µs): its batches of a few thousand rows otherwise held a core for milliseconds every 50 ms, and every HTTP
// call waiting on the event loop behind it stalled together (docs/performance.md, "The tail").
constexpr int kYieldEveryVmSteps = 1000;

class SqliteExecutionLogBackend final : public ExecutionLogBackend {
 public:
  SqliteExecutionLogBackend(ExecutionLogOptions options, std::unique_ptr<SqliteDb> writer,
                            std::unique_ptr<SqliteDb> reader)
      : options_(std::move(options)), writer_(std::move(writer)), reader_(std::move(reader)) {}

  StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit,
                                                 std::string const& message_id) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT execution_id, function, trigger, message_id, attempt, "
                                                      "status, start_ms, duration_ms, error FROM executions WHERE "
                                                      "function = ?1 AND (?3 = '' OR message_id = ?3) "
                                                      "ORDER BY start_ms DESC LIMIT ?2"));
    st->Bind(1, function).Bind(2, limit).Bind(3, message_id);
    std::vector<ExecutionRow> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back(ReadExecution(*st));
    }
    return out;
  }

  StatusOr<std::optional<ExecutionRow>> Execution(std::string const& execution_id) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT execution_id, function, trigger, message_id, attempt, "
                                                      "status, start_ms, duration_ms, error FROM executions WHERE "
                                                      "execution_id = ?1"));
    st->Bind(1, execution_id);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<ExecutionRow>();
    return std::optional<ExecutionRow>(ReadExecution(*st));
  }

  StatusOr<std::vector<LogEntry>> Logs(LogQuery const& q) override {
    std::lock_guard lock(read_mu_);
    // The newest `limit` lines, read backwards and returned in order.
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT seq, time_ms, function, execution_id, stream, severity, "
                                                      "message FROM logs WHERE function = ?1 AND seq > ?2 AND "
                                                      "(?3 = '' OR execution_id = ?3) ORDER BY seq DESC LIMIT ?4"));
    st->Bind(1, q.function).Bind(2, q.after_seq).Bind(3, q.execution_id).Bind(4, q.limit);
    std::vector<LogEntry> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({st->Int(0), st->Int(1), st->Text(2), st->Text(3), st->Text(4), st->Text(5), st->Text(6)});
    }
    std::reverse(out.begin(), out.end());
    return out;
  }

  Status WriteBatch(std::vector<ExecutionRow const*> const& executions,
                    std::vector<LogEntry const*> const& logs) override {
    static MultiRowSql const kInsertLogs("INSERT INTO logs(time_ms, function, execution_id, stream, severity, message) "
                                         "VALUES ", "(?, ?, ?, ?, ?, ?)", ", ", "");
    static MultiRowSql const kInsertExecutions("INSERT OR REPLACE INTO executions(execution_id, function, trigger, "
                                               "message_id, attempt, status, start_ms, duration_ms, error) VALUES ",
                                               "(?, ?, ?, ?, ?, ?, ?, ?, ?)", ", ", "");
    SqliteDb& db = *writer_;
    FERRY_RETURN_IF_ERROR(db.Exec("BEGIN"));
    Status st = [&]() -> Status {
      for (std::size_t first = 0; first < logs.size(); first += kRowsPerStatement) {
        int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, logs.size() - first));
        FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare(kInsertLogs.For(n)));
        for (int i = 0; i < n; ++i) {
          auto const& l = *logs[first + static_cast<std::size_t>(i)];
          int const p = i * 6;
          ins->Bind(p + 1, l.time_ms)
              .Bind(p + 2, l.function)
              .Bind(p + 3, l.execution_id)
              .Bind(p + 4, l.stream)
              .Bind(p + 5, l.severity)
              .Bind(p + 6, l.message);
        }
        FERRY_RETURN_IF_ERROR(ins->Exec());
      }
      for (std::size_t first = 0; first < executions.size(); first += kRowsPerStatement) {
        int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, executions.size() - first));
        FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare(kInsertExecutions.For(n)));
        for (int i = 0; i < n; ++i) {
          auto const& e = *executions[first + static_cast<std::size_t>(i)];
          int const p = i * 9;
          ins->Bind(p + 1, e.execution_id)
              .Bind(p + 2, e.function)
              .Bind(p + 3, e.trigger)
              .Bind(p + 4, e.message_id)
              .Bind(p + 5, e.attempt)
              .Bind(p + 6, e.status)
              .Bind(p + 7, e.start_ms)
              .Bind(p + 8, e.duration_ms)
              .Bind(p + 9, e.error);
        }
        FERRY_RETURN_IF_ERROR(ins->Exec());
      }
      return OkStatus();
    }();
    if (!st.ok()) {
      (void)db.Exec("ROLLBACK");
      return st;
    }
    return db.Exec("COMMIT");
  }

  StatusOr<int64_t> Retain(int64_t now_ms) override {
    SqliteDb& db = *writer_;
    int64_t before = now_ms - options_.retention_ms;
    FERRY_ASSIGN_OR_RETURN(auto old_logs,
                           db.Prepare("DELETE FROM logs WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM logs) - ?1 "
                                      "OR time_ms < ?2"));
    FERRY_RETURN_IF_ERROR(old_logs->Bind(1, options_.max_log_lines).Bind(2, before).Exec());
    int64_t deleted = db.Changes();
    FERRY_ASSIGN_OR_RETURN(auto old_execs,
                           db.Prepare("DELETE FROM executions WHERE start_ms < ?1 OR rowid <= (SELECT "
                                      "COALESCE(MAX(rowid), 0) FROM executions) - ?2"));
    FERRY_RETURN_IF_ERROR(old_execs->Bind(1, before).Bind(2, options_.max_executions).Exec());
    return deleted;
  }

  ExecutionLogOptions const options_;
  std::unique_ptr<SqliteDb> writer_;  // used only on the buffer's thread
  std::mutex read_mu_;
  std::unique_ptr<SqliteDb> reader_;  // GUARDED_BY(read_mu_)

  static ExecutionRow ReadExecution(SqliteStmt& st) {
    return {st.Text(0), st.Text(1), st.Text(2), st.Text(3), static_cast<int>(st.Int(4)),
            st.Text(5), st.Int(6),  st.Int(7),  st.Text(8)};
  }

};

}  // namespace

StatusOr<std::unique_ptr<ExecutionLog>> MakeSqliteExecutionLog(ExecutionLogOptions const& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return UnavailableError("cannot create data directory \"" + options.data_dir + "\": " + ec.message());
  std::string path = (std::filesystem::path(options.data_dir) / "executions.db").string();
  FERRY_ASSIGN_OR_RETURN(auto writer, SqliteDb::Open(path));
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode = WAL"));
  // Observability data: no fsync per commit (see the class comment).
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = NORMAL"));
  FERRY_RETURN_IF_ERROR(writer->Exec(kSchema));
  writer->YieldEvery(kYieldEveryVmSteps);
  FERRY_ASSIGN_OR_RETURN(auto reader, SqliteDb::Open(path));
  FERRY_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON"));
  return MakeBufferedExecutionLog(
      std::make_unique<SqliteExecutionLogBackend>(options, std::move(writer), std::move(reader)));
}

}  // namespace ferry
