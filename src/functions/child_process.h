#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/status.h"

namespace boost::asio {
class io_context;
}

namespace ferry {

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  std::string working_dir;        // empty: the daemon's
  std::map<std::string, std::string> env;  // added to the daemon's environment
  std::vector<int> cgroup_procs_fds;  // the child joins these cgroups (writes "0" to each cgroup.procs) before exec
  // A build step (npm ci, pip install): also gets the daemon's package-manager settings (PIP_*), which may hold a
  // private index's credentials and so are not an instance's.
  bool build = false;
};

// Receives each line the child writes; `is_stderr` tells the stream. Called from the child's reader threads, or
// its output loop (OutputLoop), or a thread that waits for its output (WaitOutputRead, WaitOutputDrained,
// TryDrainOutput); one at a time, in order.
using LineHandler = std::function<void(bool is_stderr, std::string line)>;

// Where a child's output is read when not on two threads of its own: an event loop (run by one thread), which
// watches both pipes and handles their lines as they come. A caller on that loop (an HTTP call's exchange) then
// gets its instance's lines with no thread woken. `may_read` false (the lines' sink is full) pauses the reading,
// so the child's writes block rather than the loop.
struct OutputLoop {
  boost::asio::io_context* io = nullptr;
  std::function<bool()> may_read;
};

// The longest line read from a child's output; a longer one is split.
inline constexpr std::size_t kMaxLineBytes = 64 * 1024;

// A child process with its stdout and stderr read line by line (valid UTF-8, at most kMaxLineBytes each). Killing is SIGKILL to its process group, so
// whatever it started goes too. Destroying kills and reaps it. Thread-safe.
class ChildProcess {
 public:
  // Reads its output on two threads of its own, or on `loop` when it has an io.
  static StatusOr<std::unique_ptr<ChildProcess>> Spawn(ProcessOptions const& options, LineHandler on_line,
                                                       OutputLoop loop = {});
  ~ChildProcess();
  ChildProcess(ChildProcess const&) = delete;
  ChildProcess& operator=(ChildProcess const&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  void Kill();
  // Waits, at most `max`, until its output has been read to the end (its pipes closed), so its last lines have
  // reached the line handler. Returns whether they have.
  bool WaitOutputRead(std::chrono::milliseconds max);
  // Waits, at most `max`, until what the process has written so far has reached the line handler: both pipes
  // empty and neither reader between a read and its lines' handling. A running process's answer can overtake its
  // output (they come by different channels); this puts them back in order. Returns whether it drained.
  bool WaitOutputDrained(std::chrono::milliseconds max);
  // For a waiter without a thread: calls `fn` once the output has drained (as WaitOutputDrained sees it), on a
  // reader's thread after it handled a read, and returns its token; it must be quick. Drained already: calls
  // nothing and returns 0. CancelWhenDrained(token) forgets it (done, or called, once it returns).
  uint64_t WhenOutputDrained(std::function<void()> fn);
  void CancelWhenDrained(uint64_t token);
  // Reads and handles, on the caller's thread, what the process has written that no reader has taken yet: the
  // same order without waking a reader thread (a call on the event loop's path). Gives up, returning false, when
  // a reader is handling output now, more than kMaxDrainBytes wait, or (with an output loop) its sink is full; true
  // when drained.
  bool TryDrainOutput();
  static constexpr int kMaxDrainBytes = 16 * 1024;
  // True once the process has exited (reaps it without blocking).
  bool Exited();
  // Resident memory of the process in bytes, 0 when it is gone.
  [[nodiscard]] int64_t ResidentBytes() const;
  // How it ended, e.g. "exit status 1" or "killed by signal 9"; empty while running.
  [[nodiscard]] std::string ExitDescription();
  // The exit status once exited normally; -1 while running or when killed by a signal.
  [[nodiscard]] int ExitCode();

 private:
  // One output pipe (its read end non-blocking), read by its reader thread or by TryDrainOutput's caller. `mu` is
  // held for a read and the handling of its lines, so the lines stay in order whoever reads them.
  struct Pipe {
    int fd;
    bool is_stderr;
    std::mutex mu;
    std::string pending;  // GUARDED_BY(mu): the start of a line whose end is not read yet
    bool ended = false;   // GUARDED_BY(mu): read to its end (or given up on), its last line handled
  };
  struct LoopWatch;  // the output loop's watch of the pipes (child_process.cc)

  ChildProcess(pid_t pid, int out_fd, int err_fd, LineHandler on_line, OutputLoop loop);
  void ReadLines(Pipe& pipe);
  // The pipe is at its end: handles its unfinished last line, counts a reader less. REQUIRES(pipe.mu).
  void EndPipe(Pipe& pipe);
  // Reads `pipe` until it is empty, ends, or `max_bytes` were read. REQUIRES(pipe.mu). False once it ended.
  bool ReadAvailable(Pipe& pipe, int max_bytes);
  // Reads both pipes on the calling thread until they end or `until` passes (poll between reads). Returns whether
  // they ended.
  bool ReadToEnd(std::chrono::steady_clock::time_point until);
  // One read of at most kReadBytes from `pipe` and the handling of its lines. REQUIRES(pipe.mu). read(2)'s result.
  // A read of a pipe returns fewer bytes than asked only when it has emptied the pipe, so the caller need not read
  // again to be told EAGAIN (one system call less for each wake-up; the waits that follow re-check readiness).
  static constexpr ssize_t kReadBytes = 4096;
  ssize_t ReadAndHandle(Pipe& pipe);
  // Ends a read's handling: wakes the waiters for a drain. REQUIRES(pipe.mu), after ++readers_handling_.
  void Handled();

  pid_t pid_;
  LineHandler on_line_;
  // Ends the readers when a process the child started outside its group (setsid) keeps the pipes open after
  // the child is gone. Made before the readers start.
  int stop_fd_;
  Pipe out_, err_;                          // their fds closed by the destructor, after the readers end
  std::atomic<int> readers_handling_{0};    // readers between a read and the end of its lines' handling
  std::mutex drained_mu_;
  std::condition_variable drained_cv_;      // notified each time a reader has handled what it read
  std::map<uint64_t, std::function<void()>> when_drained_;  // GUARDED_BY(drained_mu_)
  uint64_t next_drained_token_ = 1;                         // GUARDED_BY(drained_mu_)
  bool Drained();
  std::mutex mu_;
  std::condition_variable readers_cv_;
  int readers_running_ = 2;  // GUARDED_BY(mu_)
  bool reaped_ = false;      // GUARDED_BY(mu_)
  int wait_status_ = 0;      // GUARDED_BY(mu_)
  std::thread out_reader_;  // none with an output loop
  std::thread err_reader_;
  std::shared_ptr<LoopWatch> watch_;  // with an output loop
};

}  // namespace ferry
