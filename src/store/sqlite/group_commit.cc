#include "store/sqlite/group_commit.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <pthread.h>
#include <unistd.h>

#include "common/status_macros.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/storage_faults.h"

namespace ferry {

void GroupCommitWriter::Job::Answer(Status status) {
  answered = latency::Now();
  done.set_value(std::move(status));
}

void GroupCommitWriter::Batch::Answer() {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i] == nullptr) continue;
    if (jobs[i]->durable) latency::RecordSince(Stage::kStoreSync, committed);
    jobs[i]->Answer(results[i]);
  }
}

void GroupCommitWriter::Batch::AnswerNonDurable() {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i] != nullptr && !jobs[i]->durable) {
      jobs[i]->Answer(results[i]);
      jobs[i] = nullptr;
    }
  }
}

GroupCommitWriter::GroupCommitWriter(SqliteDb& db, int wal_fd, Hooks hooks)
    : db_(db), wal_fd_(wal_fd), hooks_(std::move(hooks)), thread_([this] { WriterLoop(); }) {
  if (wal_fd_ >= 0) sync_thread_ = std::thread([this] { SyncLoop(); });
}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  if (sync_thread_.joinable()) {
    {
      std::lock_guard lock(sync_mu_);
      sync_stop_ = true;
    }
    sync_cv_.notify_one();
    sync_thread_.join();
  }
  if (wal_fd_ >= 0) close(wal_fd_);
}

Status GroupCommitWriter::Write(std::function<Status(SqliteDb&)> fn, bool durable) {
  if (sync_failed_) return UnavailableError("the disk failed to sync the store; restart Ferry");
  Job job{std::move(fn), {}, durable};
  job.queued = latency::Now();
  auto result = job.done.get_future();
  {
    std::lock_guard lock(mu_);
    queue_.push_back(&job);
  }
  cv_.notify_one();
  Status status = result.get();
  if (job.answered != latency::Clock::time_point{}) latency::RecordSince(Stage::kStoreReturn, job.answered);
  return status;
}

// The writer thread serves every request, so nothing one request brings (a library that throws on odd input)
// may end it.
Status GroupCommitWriter::RunJob(Job& job) {
  try {
    return job.fn(db_);
  } catch (std::exception const& e) {
    return InternalError(std::string("store: ") + e.what());
  }
}

Status GroupCommitWriter::Statement(char const* sql) {
  FERRY_ASSIGN_OR_RETURN(auto st, db_.Prepare(sql));
  return st->Exec();
}

void GroupCommitWriter::WriterLoop() {
  pthread_setname_np(pthread_self(), "ferry-writer");
  while (true) {
    Batch b;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      while (!queue_.empty() && static_cast<int>(b.jobs.size()) < kMaxJobsPerCommit) {
        b.jobs.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    b.results.assign(b.jobs.size(), OkStatus());
    auto const started = latency::Now();
    if (started != latency::Clock::time_point{}) {
      for (Job* job : b.jobs) {
        if (job->queued != latency::Clock::time_point{}) latency::Record(Stage::kStoreQueue, started - job->queued);
      }
    }
    Status txn = Statement("BEGIN IMMEDIATE");
    // A job alone in its batch needs no savepoint: when it fails, the whole transaction rolls back (two statements
    // fewer a batch; most batches of a lone subscriber's acks and leases are one job).
    bool const alone = b.jobs.size() == 1;
    bool alone_failed = false;
    for (std::size_t i = 0; txn.ok() && i < b.jobs.size(); ++i) {
      if (!alone) txn = Statement("SAVEPOINT job");
      if (!txn.ok()) break;
      b.results[i] = RunJob(*b.jobs[i]);
      if (alone) {
        alone_failed = !b.results[i].ok();
        break;
      }
      if (!b.results[i].ok()) txn = Statement("ROLLBACK TO job");
      if (txn.ok()) txn = Statement("RELEASE job");
    }
    if (txn.ok() && !alone_failed && hooks_.before_commit) txn = hooks_.before_commit(db_);
    if (txn.ok() && !alone_failed) txn = Statement("COMMIT");
    if (!txn.ok() || alone_failed) (void)db_.Exec("ROLLBACK");
    b.committed = latency::Now();
    if (started != latency::Clock::time_point{}) {
      for (std::size_t i = 0; i < b.jobs.size(); ++i) latency::Record(Stage::kStoreBatch, b.committed - started);
    }
    if (hooks_.after_batch) hooks_.after_batch(txn.ok() && !alone_failed);
    if (!txn.ok()) {
      // A full disk is the client's to know (RESOURCE_EXHAUSTED); anything else, retry later (UNAVAILABLE).
      StatusCode code = txn.code() == StatusCode::kResourceExhausted ? txn.code() : StatusCode::kUnavailable;
      for (auto& r : b.results) r = Status(code, "store commit failed: " + txn.message());
    }
    if (wal_fd_ < 0 || !txn.ok()) {
      b.Answer();
      continue;
    }
    b.AnswerNonDurable();
    {
      std::lock_guard lock(sync_mu_);
      sync_queue_.push_back(std::move(b));
    }
    sync_cv_.notify_one();
  }
}

// Makes committed batches durable with one fdatasync of the WAL, then answers them.
void GroupCommitWriter::SyncLoop() {
  pthread_setname_np(pthread_self(), "ferry-fsync");
  std::vector<Batch> ready;
  while (true) {
    {
      std::unique_lock lock(sync_mu_);
      sync_cv_.wait(lock, [&] { return sync_stop_ || !sync_queue_.empty(); });
      if (sync_queue_.empty()) return;  // sync_stop_ and drained
      std::swap(ready, sync_queue_);
    }
    bool synced = false;
    if (CurrentStorageFault() == StorageFault::kSyncFails) {
      errno = EIO;
    } else {
      synced = fdatasync(wal_fd_) == 0;
    }
    if (!synced && !sync_failed_.exchange(true)) {
      // After a failed fsync the kernel may have marked the unwritten pages clean: what was written since the
      // last good sync may not be on disk, though reads still show it, and a later sync that succeeds proves
      // nothing about it (PostgreSQL's "fsyncgate"). So nothing more is answered as durable: these batches
      // and every write after them are refused, reads go on, and a restart recovers from what is on disk.
      std::fprintf(stderr, "ferry: fdatasync of the write-ahead log failed: %s; refusing writes until Ferry is "
                   "restarted\n", std::strerror(errno));
    }
    for (auto& b : ready) {
      if (!synced) {
        for (auto& r : b.results) r = UnavailableError("the disk failed to sync the store; restart Ferry");
      }
      b.Answer();
    }
    ready.clear();
  }
}

}  // namespace ferry
