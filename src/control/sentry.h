#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ferry/status.h"
#include "model/sentry_dsn.h"
#include "store/execution_log.h"

namespace ferry {

// A failed execution, as Ferry reports it to Sentry.
struct SentryFailure {
  ExecutionRow row;
  std::string release;      // the deploy revision (K_REVISION)
  std::string server_name;  // the node
  std::vector<LogEntry> lines;  // the execution's last log lines, oldest first
};

// The envelope (a header line, an item header line, the event) for one failure; `event_id` is 32 hex digits.
std::string SentryEnvelope(SentryDsn const& dsn, SentryFailure const& failure, std::string const& event_id,
                           int64_t now_ms);

// Sends failed executions to Sentry from one thread of its own, so a slow or unreachable Sentry never slows
// executions: a report waits a moment for the execution's last lines to be stored, reads them, and goes out
// within a 10 s deadline. At most 256 reports wait; more are dropped and counted. Thread-safe.
class SentryReporter {
 public:
  SentryReporter(ExecutionLog& log, std::string server_name);
  ~SentryReporter();
  SentryReporter(SentryReporter const&) = delete;
  SentryReporter& operator=(SentryReporter const&) = delete;

  void Report(SentryDsn dsn, ExecutionRow row, std::string release);
  // ferry_sentry_reports_total{result="sent|failed|dropped"}.
  std::string RenderMetrics();

 private:
  struct Pending {
    SentryDsn dsn;
    ExecutionRow row;
    std::string release;
    std::chrono::steady_clock::time_point due;
  };
  void Run();
  void Send(Pending const& p);

  ExecutionLog& log_;
  std::string const server_name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;      // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point stop_deadline_;  // GUARDED_BY(mu_)
  int64_t sent_ = 0, failed_ = 0, dropped_ = 0;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace ferry
