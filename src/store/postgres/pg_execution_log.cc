// The execution log's PostgreSQL backend: every node's executions and log lines in the database they share, so
// `ferry logs` on any node shows them all.
#include <mutex>

#include "common/status_macros.h"
#include "store/execution_log_buffer.h"
#include "store/postgres/pg_conn.h"

namespace ferry {
namespace {

constexpr int64_t kSchemaLock = 0x46657272790003;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS executions(
  execution_id text PRIMARY KEY,
  function text NOT NULL,
  trigger text NOT NULL,
  message_id text NOT NULL,
  attempt bigint NOT NULL,
  status text NOT NULL,
  start_ms bigint NOT NULL,
  duration_ms bigint NOT NULL,
  error text NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_function ON executions(function, start_ms);
CREATE INDEX IF NOT EXISTS executions_by_message ON executions(message_id) WHERE message_id <> '';
CREATE TABLE IF NOT EXISTS logs(
  seq bigserial PRIMARY KEY,
  time_ms bigint NOT NULL,
  function text NOT NULL,
  execution_id text NOT NULL,
  stream text NOT NULL,
  severity text NOT NULL,
  message text NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_function ON logs(function, seq);
)sql";

// PostgreSQL's text holds no NUL character: a line that has one gets U+FFFD in its place.
std::string Storable(std::string text) {
  for (std::size_t i = text.find('\0'); i != std::string::npos; i = text.find('\0', i)) {
    text.replace(i, 1, "\xEF\xBF\xBD");
  }
  return text;
}

ExecutionRow ExecutionAt(PgRows const& rows, int i) {
  return {rows.Text(i, 0), rows.Text(i, 1), rows.Text(i, 2), rows.Text(i, 3), static_cast<int>(rows.Int(i, 4)),
          rows.Text(i, 5), rows.Int(i, 6),  rows.Int(i, 7),  rows.Text(i, 8)};
}

class PgExecutionLogBackend final : public ExecutionLogBackend {
 public:
  PgExecutionLogBackend(ExecutionLogOptions options, std::string const& conninfo)
      : options_(std::move(options)), readers_(conninfo, 4, std::chrono::seconds(10)), conninfo_(conninfo) {}

  Status Open() {
    FERRY_ASSIGN_OR_RETURN(writer_, PgConn::Open(conninfo_));
    FERRY_RETURN_IF_ERROR(writer_->Exec("BEGIN"));
    Status st = writer_->Run("SELECT pg_advisory_xact_lock($1::int8)", PgParams().Add(kSchemaLock));
    if (st.ok()) st = writer_->Exec(kSchema);
    if (!st.ok()) {
      (void)writer_->Exec("ROLLBACK");
      return st;
    }
    // Observability data, as in SQLite: a commit need not wait for its WAL flush.
    FERRY_RETURN_IF_ERROR(writer_->Exec("COMMIT"));
    return writer_->Exec("SET synchronous_commit = off");
  }

  Status WriteBatch(std::vector<ExecutionRow const*> const& executions,
                    std::vector<LogEntry const*> const& logs) override {
    FERRY_RETURN_IF_ERROR(Reconnect());
    FERRY_RETURN_IF_ERROR(writer_->Exec("BEGIN"));
    Status st = [&]() -> Status {
      if (!logs.empty()) {
        std::vector<int64_t> times;
        std::vector<std::string> functions, ids, streams, severities, messages;
        for (auto const* l : logs) {
          times.push_back(l->time_ms);
          functions.push_back(Storable(l->function));
          ids.push_back(Storable(l->execution_id));
          streams.push_back(l->stream);
          severities.push_back(l->severity);
          messages.push_back(Storable(l->message));
        }
        FERRY_RETURN_IF_ERROR(writer_->Run("INSERT INTO logs(time_ms, function, execution_id, stream, severity, "
                                           "message) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], "
                                           "$4::text[], $5::text[], $6::text[])",
                                           PgParams().AddArray(times).AddArray(functions).AddArray(ids)
                                               .AddArray(streams).AddArray(severities).AddArray(messages)));
      }
      for (auto const* e : executions) {
        FERRY_RETURN_IF_ERROR(writer_->Run("INSERT INTO executions(execution_id, function, trigger, message_id, "
                                           "attempt, status, start_ms, duration_ms, error) VALUES($1, $2, $3, $4, "
                                           "$5, $6, $7, $8, $9) ON CONFLICT(execution_id) DO UPDATE SET "
                                           "function = excluded.function, trigger = excluded.trigger, message_id = "
                                           "excluded.message_id, attempt = excluded.attempt, status = "
                                           "excluded.status, start_ms = excluded.start_ms, duration_ms = "
                                           "excluded.duration_ms, error = excluded.error",
                                           PgParams().Add(Storable(e->execution_id)).Add(Storable(e->function))
                                               .Add(e->trigger).Add(Storable(e->message_id)).Add(e->attempt)
                                               .Add(e->status).Add(e->start_ms).Add(e->duration_ms)
                                               .Add(Storable(e->error))));
      }
      return OkStatus();
    }();
    if (!st.ok()) {
      (void)writer_->Exec("ROLLBACK");
      return st;
    }
    return writer_->Exec("COMMIT");
  }

  StatusOr<int64_t> Retain(int64_t now_ms) override {
    FERRY_RETURN_IF_ERROR(Reconnect());
    int64_t before = now_ms - options_.retention_ms;
    FERRY_ASSIGN_OR_RETURN(auto old_logs,
                           writer_->Query("DELETE FROM logs WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM logs) - $1 "
                                          "OR time_ms < $2",
                                          PgParams().Add(options_.max_log_lines).Add(before)));
    FERRY_RETURN_IF_ERROR(writer_->Run("DELETE FROM executions WHERE start_ms < $1", PgParams().Add(before)));
    return int64_t{old_logs.Affected()};
  }

  StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit,
                                                 std::string const& message_id) override {
    FERRY_ASSIGN_OR_RETURN(auto db, readers_.Acquire());
    FERRY_ASSIGN_OR_RETURN(auto rows, db->Query("SELECT execution_id, function, trigger, message_id, attempt, "
                                                "status, start_ms, duration_ms, error FROM executions WHERE "
                                                "function = $1 AND ($3 = '' OR message_id = $3) "
                                                "ORDER BY start_ms DESC LIMIT $2",
                                                PgParams().Add(function).Add(limit).Add(Storable(message_id))));
    std::vector<ExecutionRow> out;
    for (int i = 0; i < rows.size(); ++i) out.push_back(ExecutionAt(rows, i));
    return out;
  }

  StatusOr<std::optional<ExecutionRow>> Execution(std::string const& execution_id) override {
    FERRY_ASSIGN_OR_RETURN(auto db, readers_.Acquire());
    FERRY_ASSIGN_OR_RETURN(auto rows, db->Query("SELECT execution_id, function, trigger, message_id, attempt, "
                                                "status, start_ms, duration_ms, error FROM executions WHERE "
                                                "execution_id = $1",
                                                PgParams().Add(Storable(execution_id))));
    if (rows.empty()) return std::optional<ExecutionRow>();
    return std::optional<ExecutionRow>(ExecutionAt(rows, 0));
  }

  StatusOr<std::vector<LogEntry>> Logs(LogQuery const& q) override {
    FERRY_ASSIGN_OR_RETURN(auto db, readers_.Acquire());
    // The newest `limit` lines, read backwards and returned in order.
    FERRY_ASSIGN_OR_RETURN(auto rows, db->Query("SELECT seq, time_ms, function, execution_id, stream, severity, "
                                                "message FROM logs WHERE function = $1 AND seq > $2 AND "
                                                "($3 = '' OR execution_id = $3) ORDER BY seq DESC LIMIT $4",
                                                PgParams().Add(Storable(q.function)).Add(q.after_seq)
                                                    .Add(Storable(q.execution_id)).Add(q.limit)));
    std::vector<LogEntry> out;
    for (int i = rows.size() - 1; i >= 0; --i) {
      out.push_back({rows.Int(i, 0), rows.Int(i, 1), rows.Text(i, 2), rows.Text(i, 3), rows.Text(i, 4),
                     rows.Text(i, 5), rows.Text(i, 6)});
    }
    return out;
  }

 private:
  // The writer's connection, opened again when the database went away (the buffer retries the batch later).
  Status Reconnect() {
    if (writer_ != nullptr && !writer_->broken()) return OkStatus();
    FERRY_ASSIGN_OR_RETURN(writer_, PgConn::Open(conninfo_));
    return writer_->Exec("SET synchronous_commit = off");
  }

  ExecutionLogOptions const options_;
  PgPool readers_;
  std::string const conninfo_;
  std::unique_ptr<PgConn> writer_;  // used only on the buffer's thread (and by Open, before it starts)
};

}  // namespace

StatusOr<std::unique_ptr<ExecutionLog>> MakePostgresExecutionLog(std::string const& conninfo,
                                                                 ExecutionLogOptions const& options) {
  auto backend = std::make_unique<PgExecutionLogBackend>(options, conninfo);
  FERRY_RETURN_IF_ERROR(backend->Open());
  return MakeBufferedExecutionLog(std::move(backend));
}

}  // namespace ferry
