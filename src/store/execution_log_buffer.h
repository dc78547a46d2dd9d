#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "store/execution_log.h"

namespace ferry {

// Where an execution log keeps its rows: SQLite (executions.db, one node's) or PostgreSQL (every node's). Its
// writes come from one thread, the buffer's; its queries from any.
class ExecutionLogBackend {
 public:
  virtual ~ExecutionLogBackend() = default;
  // One batch, in one transaction. An execution recorded again replaces the earlier row.
  [[nodiscard]] virtual Status WriteBatch(std::vector<ExecutionRow const*> const& executions,
                                          std::vector<LogEntry const*> const& logs) = 0;
  // Deletes what retention no longer keeps (ExecutionLogOptions); returns the lines deleted.
  [[nodiscard]] virtual StatusOr<int64_t> Retain(int64_t now_ms) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit,
                                                                      std::string const& message_id) = 0;
  [[nodiscard]] virtual StatusOr<std::optional<ExecutionRow>> Execution(std::string const& execution_id) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<LogEntry>> Logs(LogQuery const& query) = 0;
};

// The ExecutionLog over a backend: rows wait in a bounded buffer (8 MiB of lines; an instance that writes faster
// waits for room, at most 5 s a line, then its line is dropped) and one thread writes them in batches, every 50 ms
// or 2,000 rows, and applies retention every minute.
std::unique_ptr<ExecutionLog> MakeBufferedExecutionLog(std::unique_ptr<ExecutionLogBackend> backend);

}  // namespace ferry
