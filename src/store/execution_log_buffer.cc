// The execution log's buffer and its writer thread, whatever the backend (store/execution_log_buffer.h).
#include "store/execution_log_buffer.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <variant>

#include "common/status_macros.h"

namespace ferry {
namespace {

constexpr auto kBatchWindow = std::chrono::milliseconds(50);
constexpr std::size_t kBatchRows = 2000;
// Lines waiting to be written are bounded (the batch being written holds as much again at most).
constexpr std::size_t kMaxPendingBytes = 8 << 20;
constexpr auto kMaxWaitForRoom = std::chrono::seconds(5);
constexpr std::size_t kRoomMargin = 1 << 20;  // HasRoomForLines
constexpr auto kRetentionEvery = std::chrono::seconds(60);

class BufferedExecutionLog final : public ExecutionLog {
 public:
  explicit BufferedExecutionLog(std::unique_ptr<ExecutionLogBackend> backend)
      : backend_(std::move(backend)), thread_([this] { WriterLoop(); }) {}

  ~BufferedExecutionLog() override {
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
  bool HasRoomForLines() override {
    // A margin far above what an output loop reads per turn (64 KiB an instance), so the turn's lines fit. Asked
    // on every read of instance output and every HTTP call's drain: no lock.
    return pending_bytes_.load(std::memory_order_relaxed) + kRoomMargin < kMaxPendingBytes;
  }
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

  StatusOr<std::vector<ExecutionRow>> Executions(std::string const& function, int limit,
                                                 std::string const& message_id) override {
    return backend_->Executions(function, limit, message_id);
  }
  StatusOr<std::optional<ExecutionRow>> Execution(std::string const& execution_id) override {
    return backend_->Execution(execution_id);
  }
  StatusOr<std::vector<LogEntry>> Logs(LogQuery const& q) override { return backend_->Logs(q); }

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
        auto r = backend_->Retain(retention_now);
        if (r.ok()) deleted = *r;
        else st = r.status();
        next_retention = std::chrono::steady_clock::now() + kRetentionEvery;
      }
      // Freed before the lock is taken again: a batch is thousands of rows and their strings, and every Record and
      // Append (the HTTP event loop's among them) would wait for the freeing.
      batch = {};

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
    std::vector<ExecutionRow const*> executions;
    std::vector<LogEntry const*> logs;
    for (auto const& item : batch) {
      if (auto const* e = std::get_if<ExecutionRow>(&item)) {
        executions.push_back(e);
      } else {
        logs.push_back(&std::get<LogEntry>(item));
      }
    }
    try {
      return backend_->WriteBatch(executions, logs);
    } catch (std::exception const& e) {
      return InternalError(std::string("execution log: ") + e.what());
    }
  }

  std::unique_ptr<ExecutionLogBackend> const backend_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::condition_variable space_cv_;   // room in pending_
  std::deque<Item> pending_;           // GUARDED_BY(mu_)
  std::atomic<std::size_t> pending_bytes_{0};  // of the lines in pending_; changed under mu_, read without it
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

std::unique_ptr<ExecutionLog> MakeBufferedExecutionLog(std::unique_ptr<ExecutionLogBackend> backend) {
  return std::make_unique<BufferedExecutionLog>(std::move(backend));
}

}  // namespace ferry
