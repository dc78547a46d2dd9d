#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "common/latency_stages.h"
#include "ferry/status.h"

namespace ferry {

class SqliteDb;

// Group commit over one SQLite connection in WAL mode: every write runs on one writer thread, which batches the
// requests waiting at that moment into one transaction. Each request gets its own savepoint (or, alone in its batch,
// the transaction itself), so a failing request rolls back alone, and all of them share one fsync.
//
// The fsync is pipelined: SQLite runs with synchronous=NORMAL (commits append to the WAL without syncing; the
// database stays consistent after power loss, checkpoints still sync), and a second thread fdatasyncs the WAL
// file and only then answers the requests of every batch committed before that sync. The writer meanwhile runs
// the next batch, so fsync latency overlaps work instead of adding to it. Nothing durable is answered before it
// is on disk; what another request may read earlier is a prefix of the WAL and is lost together, if at all.
class GroupCommitWriter {
 public:
  struct Hooks {
    // On the writer thread, before each COMMIT: a last write of the batch's own (an error fails the batch).
    std::function<Status(SqliteDb&)> before_commit;
    // On the writer thread, after each batch: whether it committed (false: it rolled back whole).
    std::function<void(bool committed)> after_batch;
  };

  // wal_fd: an open descriptor of the WAL file to fdatasync before answering durable writes (the writer owns and
  // closes it), or -1 when SQLite syncs itself (synchronous=FULL) or nothing is synced.
  GroupCommitWriter(SqliteDb& db, int wal_fd, Hooks hooks);
  ~GroupCommitWriter();  // finishes the writes queued, then stops
  GroupCommitWriter(GroupCommitWriter const&) = delete;
  GroupCommitWriter& operator=(GroupCommitWriter const&) = delete;

  // Runs `fn` inside the next group-committed transaction and waits for the commit and, when `durable`, for the
  // fsync that makes it survive a power loss. An exception `fn` throws fails its own request alone (INTERNAL).
  Status Write(std::function<Status(SqliteDb&)> fn, bool durable = true);

 private:
  struct Job {
    std::function<Status(SqliteDb&)> fn;
    std::promise<Status> done;
    bool durable = true;  // answered after the fsync; otherwise after the commit
    latency::Clock::time_point queued{}, answered{};  // for the stage histograms, when on
    void Answer(Status status);
  };
  // Jobs committed together, and their outcomes, waiting to be answered.
  struct Batch {
    std::vector<Job*> jobs;
    std::vector<Status> results;
    latency::Clock::time_point committed{};
    void Answer();
    void AnswerNonDurable();  // the jobs that need not wait for the fsync, then forgets them
  };

  static constexpr int kMaxJobsPerCommit = 256;

  Status RunJob(Job& job);
  Status Statement(char const* sql);
  void WriterLoop();
  void SyncLoop();

  SqliteDb& db_;  // used only on thread_
  int const wal_fd_;
  Hooks const hooks_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::vector<Batch> sync_queue_;  // GUARDED_BY(sync_mu_): committed, not yet fsynced
  bool sync_stop_ = false;         // GUARDED_BY(sync_mu_)
  std::atomic<bool> sync_failed_{false};  // an fsync failed: every write is refused from then on

  std::thread thread_;
  std::thread sync_thread_;
};

}  // namespace ferry
