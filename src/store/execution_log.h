#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// One finished execution of a function.
struct ExecutionRow {
  std::string execution_id;
  std::string function;    // the function's full name
  std::string trigger;     // "pubsub", "call", "http"
  std::string message_id;  // for Pub/Sub triggers
  int attempt = 0;
  std::string status;      // ok, error, timeout, crash, oom
  int64_t start_ms = 0;
  int64_t duration_ms = 0;
  std::string error;
};

// One log line: an instance's stdout or stderr line, or one Ferry writes about an execution ("ferry").
struct LogEntry {
  int64_t seq = 0;  // assigned when stored; increasing
  int64_t time_ms = 0;
  std::string function;
  std::string execution_id;  // "" when the line cannot be tied to one
  std::string stream;        // stdout, stderr, ferry
  std::string severity;      // DEFAULT, DEBUG, INFO, WARNING, ERROR
  std::string message;
};

struct LogQuery {
  std::string function;      // required
  std::string execution_id;  // only this execution's lines when set
  int64_t after_seq = 0;     // only lines after this one (for --follow)
  int limit = 100;           // the newest `limit` lines that match, returned oldest first
};

struct ExecutionLogOptions {
  std::string data_dir = "./data";
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;  // older lines and executions are deleted
  int64_t max_log_lines = 1'000'000;              // and at most this many lines are kept
  int64_t max_executions = 1'000'000;
};

// Executions and logs of functions: observability data, kept apart from the message store in its own SQLite
// file so that writing them never slows delivery. Writes are buffered and committed together within about
// 50 ms, without an fsync each (a power loss may lose the last moments of logs, never a message). Retention is
// bounded by age and by count. Thread-safe.
class ExecutionLog {
 public:
  virtual ~ExecutionLog() = default;
  virtual void Record(ExecutionRow row) = 0;
  virtual void Append(LogEntry entry) = 0;
  // Whether lines have room, with a margin: while true, an Append on an event loop does not wait (the loop reads
  // an instance's output only then).
  [[nodiscard]] virtual bool HasRoomForLines() = 0;
  // Appends after `hold`, so lines other threads are still reading (an instance's output, which its answer
  // can overtake) come before it.
  virtual void AppendAfter(LogEntry entry, std::chrono::milliseconds hold) = 0;
  // Commits everything buffered so far; returns when it is readable.
  [[nodiscard]] virtual Status Flush() = 0;

  // Newest first.
  // Newest first; with `message_id`, only the executions of that message (its attempts).
  [[nodiscard]] virtual StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit,
                                                                      std::string const& message_id = "") = 0;
  [[nodiscard]] virtual StatusOr<std::optional<ExecutionRow>> Execution(std::string const& execution_id) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<LogEntry>> Logs(LogQuery const& query) = 0;
  // Deletes what retention no longer keeps; runs by itself every minute too. Returns the lines deleted.
  [[nodiscard]] virtual StatusOr<int64_t> ApplyRetention(int64_t now_ms) = 0;
};

StatusOr<std::unique_ptr<ExecutionLog>> MakeSqliteExecutionLog(ExecutionLogOptions const& options);
// Every node's executions and lines in the PostgreSQL database the nodes share (data_dir is not used).
StatusOr<std::unique_ptr<ExecutionLog>> MakePostgresExecutionLog(std::string const& conninfo,
                                                                 ExecutionLogOptions const& options);

}  // namespace ferry
