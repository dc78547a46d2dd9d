#include "functions/child_process.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <cstring>
#include <fstream>

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

StatusOr<Forked> ForkExec(ProcessOptions const& options) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
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
    if (options.cgroup_procs_fd >= 0 && write(options.cgroup_procs_fd, "0", 1) != 1) {
      int e = errno;
      (void)!write(exec_err[1], &e, sizeof e);
      _exit(127);
    }
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
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
  return Forked{pid, out[0], err[0]};
}

}  // namespace

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(ProcessOptions const& options, LineHandler on_line) {
  if (options.argv.empty()) return InvalidArgumentError("no program to run");
  auto forked = Forker::Get().Run([&] { return ForkExec(options); });
  if (!forked.ok()) return forked.status();
  return std::unique_ptr<ChildProcess>(new ChildProcess(forked->pid, forked->out_fd, forked->err_fd,
                                                        std::move(on_line)));
}

ChildProcess::ChildProcess(pid_t pid, int out_fd, int err_fd, LineHandler on_line)
    : pid_(pid),
      on_line_(std::move(on_line)),
      out_reader_([this, out_fd] { ReadLines(out_fd, false); }),
      err_reader_([this, err_fd] { ReadLines(err_fd, true); }) {}

ChildProcess::~ChildProcess() {
  Kill();
  {
    std::lock_guard lock(mu_);
    if (!reaped_) {
      waitpid(pid_, &wait_status_, 0);
      reaped_ = true;
    }
  }
  // The pipes close when the process group is gone, which ends the readers.
  out_reader_.join();
  err_reader_.join();
}

void ChildProcess::ReadLines(int fd, bool is_stderr) {
  pthread_setname_np(pthread_self(), "ferry-fn-output");
  std::string pending;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (auto nl = pending.find('\n', start); nl != std::string::npos; nl = pending.find('\n', start)) {
      if (on_line_) on_line_(is_stderr, pending.substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
  }
  if (!pending.empty() && on_line_) on_line_(is_stderr, pending);
  close(fd);
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
