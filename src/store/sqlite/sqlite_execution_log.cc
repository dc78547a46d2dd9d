#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <variant>
#include <algorithm>

#include "common/status_macros.h"
#include "store/execution_log.h"
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

constexpr auto kBatchWindow = std::chrono::milliseconds(50);
constexpr std::size_t kBatchRows = 2000;
// Lines waiting to be written are bounded (the batch being written holds as much again at most).
constexpr std::size_t kMaxPendingBytes = 8 << 20;
constexpr auto kMaxWaitForRoom = std::chrono::seconds(5);
constexpr auto kRetentionEvery = std::chrono::seconds(60);

class SqliteExecutionLog : public ExecutionLog {
 public:
  SqliteExecutionLog(ExecutionLogOptions options, std::unique_ptr<SqliteDb> writer, std::unique_ptr<SqliteDb> reader)
      : options_(std::move(options)),
        writer_(std::move(writer)),
        reader_(std::move(reader)),
        thread_([this] { WriterLoop(); }) {}

  ~SqliteExecutionLog() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    space_cv_.notify_all();
    thread_.join();
  }

  void Record(ExecutionRow row) override { Enqueue(std::move(row)); }
  void Append(LogEntry entry) override { Enqueue(std::move(entry)); }
  void AppendAfter(LogEntry entry, std::chrono::milliseconds hold) override {
    std::lock_guard lock(mu_);
    if (stop_) return;
    held_.emplace_back(std::chrono::steady_clock::now() + hold, std::move(entry));
    ++enqueued_;
    if (held_.size() == 1) cv_.notify_all();
  }

  Status Flush() override {
    std::unique_lock lock(mu_);
    uint64_t target = enqueued_;
    flush_requested_ = true;
    cv_.notify_all();
    done_cv_.wait(lock, [&] { return written_ >= target || stop_; });
    return last_error_;
  }

  StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT execution_id, function, trigger, message_id, attempt, "
                                                      "status, start_ms, duration_ms, error FROM executions WHERE "
                                                      "function = ?1 ORDER BY start_ms DESC LIMIT ?2"));
    st->Bind(1, function).Bind(2, limit);
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

  StatusOr<int64_t> ApplyRetention(int64_t now_ms) override {
    // Runs on the caller's thread with its own connection use guarded like the writer's: route it through the
    // writer thread so that one connection writes.
    std::unique_lock lock(mu_);
    retention_now_ms_ = now_ms;
    uint64_t target = ++retention_requested_;
    cv_.notify_all();
    done_cv_.wait(lock, [&] { return retention_done_ >= target || stop_; });
    if (!last_error_.ok()) return last_error_;
    return retention_deleted_;
  }

 private:
  using Item = std::variant<ExecutionRow, LogEntry>;

  void Enqueue(Item item) {
    std::unique_lock lock(mu_);
    if (stop_) return;
    std::size_t bytes = 0;
    if (auto const* line = std::get_if<LogEntry>(&item)) {
      // Lines wait for room: an instance that writes faster than lines can be stored is slowed down (its reader
      // stops reading its pipe), for at most kMaxWaitForRoom; then its line is dropped. Execution records are
      // few and small and never wait.
      bytes = line->message.size() + line->execution_id.size() + 64;
      if (!space_cv_.wait_for(lock, kMaxWaitForRoom, [&] { return stop_ || pending_bytes_ < kMaxPendingBytes; })) {
        if (dropped_++ == 0) {
          std::fprintf(stderr, "ferry: function log lines arrive faster than they can be stored: dropping some\n");
        }
        return;
      }
      if (stop_) return;
    }
    pending_bytes_ += bytes;
    pending_.push_back(std::move(item));
    ++enqueued_;
    if (pending_.size() == 1 || pending_.size() >= kBatchRows) cv_.notify_all();
  }

  static ExecutionRow ReadExecution(SqliteStmt& st) {
    return {st.Text(0), st.Text(1), st.Text(2), st.Text(3), static_cast<int>(st.Int(4)),
            st.Text(5), st.Int(6),  st.Int(7),  st.Text(8)};
  }

  void WriterLoop() {
    pthread_setname_np(pthread_self(), "ferry-log-write");
    auto next_retention = std::chrono::steady_clock::now() + kRetentionEvery;
    std::unique_lock lock(mu_);
    while (true) {
      // Wait for a batch to fill or its window to pass, a held line, a flush, retention, or the stop.
      auto held_due = [&] { return !held_.empty() && held_.front().first <= std::chrono::steady_clock::now(); };
      auto wake = held_.empty() ? next_retention : std::min(next_retention, held_.front().first);
      cv_.wait_until(lock, wake, [&] {
        return stop_ || !pending_.empty() || held_due() || flush_requested_ ||
               retention_requested_ > retention_done_;
      });
      // Whatever woke it, lines arriving within the window go in the same transaction: a busy function's
      // held lines fall due one by one, and a commit each would cost more than the calls themselves.
      if ((!pending_.empty() || held_due()) && !stop_ && !flush_requested_ && pending_.size() < kBatchRows) {
        cv_.wait_for(lock, kBatchWindow, [&] { return stop_ || flush_requested_ || pending_.size() >= kBatchRows; });
      }
      std::deque<Item> batch;
      batch.swap(pending_);
      pending_bytes_ = 0;
      dropped_ = 0;
      space_cv_.notify_all();
      bool all = flush_requested_ || stop_;
      while (!held_.empty() && (all || held_due())) {
        batch.push_back(std::move(held_.front().second));
        held_.pop_front();
      }
      flush_requested_ = false;
      uint64_t batch_end = enqueued_;
      bool retention = retention_requested_ > retention_done_ || std::chrono::steady_clock::now() >= next_retention;
      uint64_t retention_target = retention_requested_;
      int64_t retention_now = retention_requested_ > retention_done_
                                  ? retention_now_ms_
                                  : std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count();
      bool stopping = stop_;
      lock.unlock();

      Status st = batch.empty() ? OkStatus() : WriteBatch(batch);
      int64_t deleted = 0;
      if (st.ok() && retention) {
        auto r = Retain(retention_now);
        if (r.ok()) deleted = *r;
        else st = r.status();
        next_retention = std::chrono::steady_clock::now() + kRetentionEvery;
      }

      lock.lock();
      written_ = batch_end;
      if (!st.ok()) last_error_ = st;
      if (retention) {
        retention_done_ = retention_target;
        retention_deleted_ = deleted;
      }
      done_cv_.notify_all();
      if (stopping && pending_.empty() && held_.empty()) return;
    }
  }

  Status WriteBatch(std::deque<Item> const& batch) {
    static MultiRowSql const kInsertLogs("INSERT INTO logs(time_ms, function, execution_id, stream, severity, message) "
                                         "VALUES ", "(?, ?, ?, ?, ?, ?)", ", ", "");
    static MultiRowSql const kInsertExecutions("INSERT OR REPLACE INTO executions(execution_id, function, trigger, "
                                               "message_id, attempt, status, start_ms, duration_ms, error) VALUES ",
                                               "(?, ?, ?, ?, ?, ?, ?, ?, ?)", ", ", "");
    std::vector<LogEntry const*> logs;
    std::vector<ExecutionRow const*> executions;
    for (auto const& item : batch) {
      if (auto const* e = std::get_if<ExecutionRow>(&item)) {
        executions.push_back(e);
      } else {
        logs.push_back(&std::get<LogEntry>(item));
      }
    }
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

  StatusOr<int64_t> Retain(int64_t now_ms) {
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
  std::unique_ptr<SqliteDb> writer_;  // used only on thread_
  std::mutex read_mu_;
  std::unique_ptr<SqliteDb> reader_;  // GUARDED_BY(read_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::condition_variable space_cv_;   // room in pending_
  std::deque<Item> pending_;           // GUARDED_BY(mu_)
  std::size_t pending_bytes_ = 0;      // GUARDED_BY(mu_): of the lines in pending_
  int64_t dropped_ = 0;                // GUARDED_BY(mu_): lines dropped since the last batch
  std::deque<std::pair<std::chrono::steady_clock::time_point, Item>> held_;  // GUARDED_BY(mu_): AppendAfter
  uint64_t enqueued_ = 0;              // GUARDED_BY(mu_)
  uint64_t written_ = 0;               // GUARDED_BY(mu_)
  bool flush_requested_ = false;       // GUARDED_BY(mu_)
  uint64_t retention_requested_ = 0;   // GUARDED_BY(mu_)
  uint64_t retention_done_ = 0;        // GUARDED_BY(mu_)
  int64_t retention_now_ms_ = 0;       // GUARDED_BY(mu_)
  int64_t retention_deleted_ = 0;      // GUARDED_BY(mu_)
  Status last_error_;                  // GUARDED_BY(mu_)
  bool stop_ = false;                  // GUARDED_BY(mu_)
  std::thread thread_;
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
  FERRY_ASSIGN_OR_RETURN(auto reader, SqliteDb::Open(path));
  FERRY_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON"));
  return std::unique_ptr<ExecutionLog>(new SqliteExecutionLog(options, std::move(writer), std::move(reader)));
}

}  // namespace ferry
