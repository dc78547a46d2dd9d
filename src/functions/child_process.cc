#include "functions/child_process.h"

#include "common/utf8.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <cstring>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

extern char** environ;

namespace ferry {

namespace {

struct Forked {
  pid_t pid;
  int out_fd;
  int err_fd;
};

// Forks on one thread that lives as long as the daemon: the parent-death signal of a child follows the thread
// that forked it, so children forked by short-lived threads would die with those threads.
class Forker {
 public:
  static Forker& Get() {
    static Forker* forker = new Forker;  // never destroyed: its thread must outlive every caller
    return *forker;
  }
  StatusOr<Forked> Run(std::function<StatusOr<Forked>()> fork_exec) {
    std::packaged_task<StatusOr<Forked>()> task(std::move(fork_exec));
    auto result = task.get_future();
    {
      std::lock_guard lock(mu_);
      queue_.push_back(&task);
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  Forker() {
    std::thread([this] {
      pthread_setname_np(pthread_self(), "ferry-forker");
      while (true) {
        std::packaged_task<StatusOr<Forked>()>* task = nullptr;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [&] { return !queue_.empty(); });
          task = queue_.front();
          queue_.pop_front();
        }
        (*task)();
      }
    }).detach();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<StatusOr<Forked>()>*> queue_;  // GUARDED_BY(mu_)
};

// Whether a variable of the daemon's environment passes to what it starts. An instance gets an explicit
// environment, as on Cloud Functions: its own env_vars plus what finding programs and locales needs, never the
// rest of the daemon's (which may hold FERRY_TOKENS or a database password). Builds (npm ci) also need the proxy,
// registry and certificate settings, and pip's (PIP_INDEX_URL, PIP_FIND_LINKS, ...) go to builds only.
bool Inherited(std::string_view name, bool build) {
  if (build && name.substr(0, 4) == "PIP_") return true;
  static constexpr std::string_view kNames[] = {
      "PATH",        "HOME",        "USER",          "LOGNAME",        "LANG",          "LANGUAGE",
      "TZ",          "TMPDIR",      "http_proxy",    "https_proxy",    "no_proxy",      "HTTP_PROXY",
      "HTTPS_PROXY", "NO_PROXY",    "SSL_CERT_FILE", "SSL_CERT_DIR",   "NODE_EXTRA_CA_CERTS"};
  static constexpr std::string_view kPrefixes[] = {"LC_", "npm_config_", "NPM_CONFIG_", "PYENV"};
  for (auto n : kNames) {
    if (name == n) return true;
  }
  for (auto p : kPrefixes) {
    if (name.substr(0, p.size()) == p) return true;
  }
  return false;
}

// In the child, before exec: every descriptor but stdin, stdout and stderr closes at exec, whatever flags it was
// opened with (Asio's and gRPC's sockets, the listening socket among them, are not all close-on-exec).
void CloseOnExecFrom3() {
#ifdef CLOSE_RANGE_CLOEXEC
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; ++fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

StatusOr<Forked> ForkExec(ProcessOptions const& options) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos && Inherited(std::string_view(kv).substr(0, eq), options.build)) {
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  for (auto const& [k, v] : options.env) env[k] = v;
  std::vector<std::string> env_strings;
  for (auto const& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out[2], err[2], exec_err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(exec_err, O_CLOEXEC) != 0) {
    return UnavailableError(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return UnavailableError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so Kill() reaches its children too
    // Die with the daemon, even a kill -9 of it: no instance outlives the supervisor that enforces its limits.
    // (The signal follows the forking thread; Ferry forks from threads that outlive their instances.)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the daemon died before prctl took effect
    for (int fd : options.cgroup_procs_fds) {
      if (write(fd, "0", 1) != 1) {
        int e = errno;
        (void)!write(exec_err[1], &e, sizeof e);
        _exit(127);
      }
    }
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    CloseOnExecFrom3();
    umask(022);  // the daemon's own is 077 (its data is private); an instance's files are its own business
    if (!options.working_dir.empty() && chdir(options.working_dir.c_str()) != 0) {
      int e = errno;
      (void)!write(exec_err[1], &e, sizeof e);
      _exit(127);
    }
    execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!write(exec_err[1], &e, sizeof e);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  close(exec_err[1]);
  int child_errno = 0;
  ssize_t n = read(exec_err[0], &child_errno, sizeof child_errno);  // EOF on a successful exec (CLOEXEC)
  close(exec_err[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    waitpid(pid, nullptr, 0);
    close(out[0]);
    close(err[0]);
    return FailedPreconditionError("cannot start \"" + options.argv[0] + "\" in \"" + options.working_dir +
                                   "\": " + std::strerror(child_errno));
  }
  // Our ends only (the child's are other open files): a reader and TryDrainOutput may race for the same bytes.
  for (int fd : {out[0], err[0]}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Forked{pid, out[0], err[0]};
}

}  // namespace

// The output loop's watch of a child's pipes: a descriptor for each (a dup of the pipe's fd, so closing it on the
// loop never touches a number the child's destructor has closed and the system reused), waited on for readability
// and read on the loop. Shared with the loop's handlers, which may run after the child is gone: they reach it only
// through `owner`, under `mu`, which the destructor clears. Lock order: mu, then a Pipe's mu.
struct ChildProcess::LoopWatch : std::enable_shared_from_this<LoopWatch> {
  static constexpr int kTurnBytes = 64 * 1024;  // read per wake-up, so one chatty child cannot hold the loop
  static constexpr auto kPauseWhenFull = std::chrono::milliseconds(20);

  LoopWatch(boost::asio::io_context& io, int out_fd, int err_fd, std::function<bool()> may_read)
      : io(io), pipes{Descriptor(io, out_fd), Descriptor(io, err_fd)}, may_read(std::move(may_read)) {}

  static boost::asio::posix::stream_descriptor Descriptor(boost::asio::io_context& io, int fd) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return boost::asio::posix::stream_descriptor(io);  // not open: Arm fails, the reads are left to waiters
    return boost::asio::posix::stream_descriptor(io, copy);
  }

  // On the loop.
  void Arm(int i) {
    pipes[i].async_wait(boost::asio::posix::descriptor_base::wait_read,
                        [self = shared_from_this(), i](boost::system::error_code ec) {
                          if (!ec) self->OnReadable(i);
                        });
  }
  void OnReadable(int i) {
    std::lock_guard lock(mu);
    if (owner == nullptr) return;
    if (may_read && !may_read()) {  // the sink is full: the child's writes wait meanwhile, not the loop
      auto pause = std::make_shared<boost::asio::steady_timer>(io, kPauseWhenFull);
      pause->async_wait([self = shared_from_this(), i, pause](boost::system::error_code) { self->Arm(i); });
      return;
    }
    Pipe& pipe = i == 0 ? owner->out_ : owner->err_;
    std::lock_guard pipe_lock(pipe.mu);
    if (!pipe.ended && owner->ReadAvailable(pipe, kTurnBytes)) Arm(i);
  }
  void Close() {
    boost::system::error_code ignored;
    for (auto& pipe : pipes) pipe.close(ignored);
  }

  boost::asio::io_context& io;
  boost::asio::posix::stream_descriptor pipes[2];  // stdout, stderr; used on the loop only
  std::function<bool()> may_read;
  std::mutex mu;
  ChildProcess* owner = nullptr;  // GUARDED_BY(mu)
};

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(ProcessOptions const& options, LineHandler on_line,
                                                             OutputLoop loop) {
  if (options.argv.empty()) return InvalidArgumentError("no program to run");
  auto forked = Forker::Get().Run([&] { return ForkExec(options); });
  if (!forked.ok()) return forked.status();
  return std::unique_ptr<ChildProcess>(new ChildProcess(forked->pid, forked->out_fd, forked->err_fd,
                                                        std::move(on_line), std::move(loop)));
}

ChildProcess::ChildProcess(pid_t pid, int out_fd, int err_fd, LineHandler on_line, OutputLoop loop)
    : pid_(pid),
      on_line_(std::move(on_line)),
      stop_fd_(loop.io != nullptr ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      out_{out_fd, false, {}, {}},
      err_{err_fd, true, {}, {}} {
  if (loop.io != nullptr) {
    watch_ = std::make_shared<LoopWatch>(*loop.io, out_fd, err_fd, std::move(loop.may_read));
    watch_->owner = this;  // no handler runs before the post below
    boost::asio::post(*loop.io, [watch = watch_] {
      watch->Arm(0);
      watch->Arm(1);
    });
    return;
  }
  out_reader_ = std::thread([this] { ReadLines(out_); });
  err_reader_ = std::thread([this] { ReadLines(err_); });
}

ChildProcess::~ChildProcess() {
  Kill();
  std::unique_lock lock(mu_);
  if (!reaped_) {
    waitpid(pid_, &wait_status_, 0);
    reaped_ = true;
  }
  if (watch_) {
    // The last lines are read here, whatever thread this is (the loop's included); then the loop lets go.
    lock.unlock();
    (void)ReadToEnd(std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
    {
      std::lock_guard watch_lock(watch_->mu);
      watch_->owner = nullptr;
    }
    boost::asio::post(watch_->io, [watch = watch_] { watch->Close(); });
    close(out_.fd);
    close(err_.fd);
    return;
  }
  // The pipes close when the process group is gone, which ends the readers, after they read the last lines. A
  // process that left the group (setsid) may hold them open for ever: the readers are then told to stop.
  if (!readers_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return readers_running_ == 0; })) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
  }
  lock.unlock();
  out_reader_.join();
  err_reader_.join();
  close(out_.fd);
  close(err_.fd);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void ChildProcess::ReadLines(Pipe& pipe) {
  pthread_setname_np(pthread_self(), "ferry-fn-output");
  while (true) {
    pollfd fds[2] = {{pipe.fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, stop_fd_ >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents == 0 && fds[1].revents != 0) break;  // told to stop, nothing left to read
    ssize_t n;
    {
      std::lock_guard lock(pipe.mu);
      n = ReadAndHandle(pipe);
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;  // EAGAIN: a drain took it
    if (n <= 0) break;
  }
  std::lock_guard lock(pipe.mu);
  EndPipe(pipe);
}

void ChildProcess::EndPipe(Pipe& pipe) {
  if (pipe.ended) return;
  pipe.ended = true;
  if (!pipe.pending.empty() && on_line_) on_line_(pipe.is_stderr, ToValidUtf8(pipe.pending));
  pipe.pending.clear();
  std::lock_guard lock(mu_);
  --readers_running_;
  readers_cv_.notify_all();
}

bool ChildProcess::ReadAvailable(Pipe& pipe, int max_bytes) {
  for (int read_bytes = 0; read_bytes < max_bytes;) {
    ssize_t n = ReadAndHandle(pipe);
    if (n > 0) {
      read_bytes += static_cast<int>(n);
      if (n < kReadBytes) return true;  // emptied it
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    } else {
      EndPipe(pipe);  // closed, or an error after which nothing more comes
      return false;
    }
  }
  return true;
}

bool ChildProcess::ReadToEnd(std::chrono::steady_clock::time_point until) {
  while (true) {
    pollfd fds[2];
    nfds_t open = 0;
    for (Pipe* pipe : {&out_, &err_}) {
      std::lock_guard lock(pipe->mu);
      if (!pipe->ended && ReadAvailable(*pipe, 1 << 20)) fds[open++] = {pipe->fd, POLLIN, 0};
    }
    if (open == 0) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (poll(fds, open, static_cast<int>(std::min<int64_t>(left.count(), 100))) < 0 && errno != EINTR) return false;
  }
}

ssize_t ChildProcess::ReadAndHandle(Pipe& pipe) {
  // A line is what comes before a newline, or kMaxLineBytes of it: a function that writes without newlines
  // still gives lines, and the buffer never holds more than one. Only newly read bytes are scanned, so the work
  // is linear in the output. Lines are made valid UTF-8 here, once, so everything after can store and show them.
  auto emit = [&](std::string_view line) {
    if (on_line_) on_line_(pipe.is_stderr, ToValidUtf8(line));
  };
  char buf[kReadBytes];
  ++readers_handling_;  // before the read: the bytes are in the pipe or being handled, never neither
  ssize_t n = read(pipe.fd, buf, sizeof buf);
  int read_errno = errno;
  std::string_view chunk(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  std::string& pending = pipe.pending;
  while (!chunk.empty()) {
    auto nl = chunk.find('\n');
    std::size_t room = kMaxLineBytes - pending.size();
    if (nl != std::string_view::npos && nl <= room) {
      pending.append(chunk.substr(0, nl));
      emit(pending);
      pending.clear();
      chunk.remove_prefix(nl + 1);
    } else if (chunk.size() < room) {
      pending.append(chunk);
      chunk = {};
    } else {
      pending.append(chunk.substr(0, room));
      emit(pending);
      pending.clear();
      chunk.remove_prefix(room);
    }
  }
  Handled();
  errno = read_errno;
  return n;
}

void ChildProcess::Handled() {
  {
    std::lock_guard lock(drained_mu_);  // so a waiter cannot miss the notification between its check and wait
    --readers_handling_;
    if (!when_drained_.empty() && Drained()) {
      for (auto& [token, fn] : when_drained_) fn();
      when_drained_.clear();
    }
  }
  drained_cv_.notify_all();
}

bool ChildProcess::TryDrainOutput() {
  // With an output loop, whose thread this may be: never wait on a full sink (its lines would wait for room).
  if (watch_ && watch_->may_read && !watch_->may_read()) return false;
  std::unique_lock out_lock(out_.mu, std::try_to_lock);
  std::unique_lock err_lock(err_.mu, std::try_to_lock);
  if (!out_lock.owns_lock() || !err_lock.owns_lock()) return false;  // a reader is handling lines: on their way
  // One poll for both pipes: mostly neither has anything left (a system call costs more than the rest here).
  pollfd fds[2] = {{out_.fd, POLLIN, 0}, {err_.fd, POLLIN, 0}};
  if (poll(fds, 2, 0) < 0) return false;
  for (int i = 0; i < 2; ++i) {
    if ((fds[i].revents & POLLIN) == 0) continue;
    Pipe& pipe = i == 0 ? out_ : err_;
    ssize_t n = kReadBytes;
    for (int read_bytes = 0; n == kReadBytes && read_bytes < kMaxDrainBytes; read_bytes += static_cast<int>(n)) {
      n = ReadAndHandle(pipe);  // until a short read or EAGAIN (all taken) or 0 (the process closed it)
    }
    if (n == kReadBytes) return false;  // more than kMaxDrainBytes: the reader thread takes the rest
  }
  return true;
}

bool ChildProcess::WaitOutputRead(std::chrono::milliseconds max) {
  if (watch_) return ReadToEnd(std::chrono::steady_clock::now() + max);  // here, not waiting for the loop
  std::unique_lock lock(mu_);
  return readers_cv_.wait_for(lock, max, [&] { return readers_running_ == 0; });
}

bool ChildProcess::Drained() {
  int out = 0, err = 0;
  return readers_handling_.load() == 0 && ioctl(out_.fd, FIONREAD, &out) == 0 && out == 0 &&
         ioctl(err_.fd, FIONREAD, &err) == 0 && err == 0 && readers_handling_.load() == 0;
}

uint64_t ChildProcess::WhenOutputDrained(std::function<void()> fn) {
  std::lock_guard lock(drained_mu_);
  if (Drained()) return 0;
  uint64_t token = next_drained_token_++;
  when_drained_.emplace(token, std::move(fn));
  return token;
}

void ChildProcess::CancelWhenDrained(uint64_t token) {
  std::lock_guard lock(drained_mu_);
  when_drained_.erase(token);
}

bool ChildProcess::WaitOutputDrained(std::chrono::milliseconds max) {
  auto const give_up = std::chrono::steady_clock::now() + max;
  if (watch_) {
    // With an output loop, what is left is read here, unless the loop is reading it now (then its handling
    // notifies). Not under drained_mu_: handling a read takes it.
    while (!(TryDrainOutput() && Drained())) {
      auto now = std::chrono::steady_clock::now();
      if (now >= give_up) return false;
      std::unique_lock lock(drained_mu_);
      drained_cv_.wait_until(lock, std::min(give_up, now + std::chrono::milliseconds(1)));
    }
    return true;
  }
  auto drained = [&] { return Drained(); };
  std::unique_lock lock(drained_mu_);
  // Woken as each read is handled; bytes not yet read are seen again at most 1 ms later.
  while (!drained()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= give_up) return false;
    drained_cv_.wait_until(lock, std::min(give_up, now + std::chrono::milliseconds(1)));
  }
  return true;
}

void ChildProcess::Kill() {
  std::lock_guard lock(mu_);
  if (reaped_) return;
  kill(-pid_, SIGKILL);
  kill(pid_, SIGKILL);
}

bool ChildProcess::Exited() {
  std::lock_guard lock(mu_);
  if (reaped_) return true;
  if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) {
    reaped_ = true;
    kill(-pid_, SIGKILL);  // whatever it left behind
  }
  return reaped_;
}

int64_t ChildProcess::ResidentBytes() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

int ChildProcess::ExitCode() {
  if (!Exited()) return -1;
  std::lock_guard lock(mu_);
  return WIFEXITED(wait_status_) ? WEXITSTATUS(wait_status_) : -1;
}

std::string ChildProcess::ExitDescription() {
  if (!Exited()) return {};
  std::lock_guard lock(mu_);
  if (WIFEXITED(wait_status_)) return "exit status " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) return "killed by signal " + std::to_string(WTERMSIG(wait_status_));
  return "ended";
}

}  // namespace ferry
