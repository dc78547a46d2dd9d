#include "functions/instance_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace ferry {
namespace {

// The daemon's own cgroup path in a hierarchy, from /proc/self/cgroup: "0::/path" for v2, "N:CONTROLLER:/path"
// for a v1 hierarchy with that controller.
std::string OwnCgroup(char const* v1_controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    bool match = v1_controller == nullptr
                     ? (line.substr(0, first) == "0" && controllers.empty())
                     : (("," + controllers + ",").find("," + std::string(v1_controller) + ",") != std::string::npos);
    if (match) return line.substr(second + 1);
  }
  return {};
}

bool WriteFile(std::string const& path, std::string const& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  close(fd);
  return ok;
}

std::string NextName() {
  static std::atomic<int64_t> seq{0};
  return "ferry-" + std::to_string(getpid()) + "-" + std::to_string(seq.fetch_add(1));
}

// Makes `path` a cgroup with each (file, value) written (a file whose name starts with '?' is optional: not
// every kernel has it); returns a descriptor of its cgroup.procs, or -1 (and nothing left behind).
int MakeCgroup(std::string const& path, std::vector<std::pair<std::string, std::string>> const& settings) {
  if (mkdir(path.c_str(), 0755) != 0) return -1;
  bool ok = true;
  for (auto const& [file, value] : settings) {
    bool optional = file.front() == '?';
    if (!WriteFile(path + "/" + (optional ? file.substr(1) : file), value) && !optional) ok = false;
  }
  int fd = ok ? open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC) : -1;
  if (fd < 0) rmdir(path.c_str());
  return fd;
}

// A child of the daemon's cgroup in the v1 hierarchy of `controller`, or "" when there is none writable.
std::string V1Parent(char const* controller) {
  std::string own = OwnCgroup(controller);
  std::string root = std::string("/sys/fs/cgroup/") + controller;
  if (own.empty() && access((root + "/cgroup.procs").c_str(), W_OK) != 0) return {};
  return root + (own == "/" ? std::string() : own);
}

}  // namespace

std::unique_ptr<InstanceCgroup> InstanceCgroup::Create(Limits limits) {
  std::unique_ptr<InstanceCgroup> cg(new InstanceCgroup());
  // cgroup v2: one child of the daemon's cgroup, with each controller the daemon's cgroup delegates.
  std::string v2 = OwnCgroup(nullptr);
  std::ifstream subtree("/sys/fs/cgroup" + v2 + "/cgroup.subtree_control");
  std::string controllers((std::istreambuf_iterator<char>(subtree)), std::istreambuf_iterator<char>());
  bool v2_memory = controllers.find("memory") != std::string::npos;
  bool v2_pids = controllers.find("pids") != std::string::npos;
  if (!v2.empty() && (v2_memory || v2_pids)) {
    std::vector<std::pair<std::string, std::string>> settings;
    if (v2_memory) settings = {{"memory.max", std::to_string(limits.memory_bytes)}, {"?memory.swap.max", "0"}};
    if (v2_pids) settings.emplace_back("pids.max", std::to_string(limits.max_tasks));
    std::string path = "/sys/fs/cgroup" + v2 + "/" + NextName();
    if (int fd = MakeCgroup(path, settings); fd >= 0) {
      cg->v2_ = true;
      if (v2_memory) cg->memory_path_ = path;
      if (v2_pids) cg->pids_path_ = path;
      cg->procs_fds_.push_back(fd);
      return cg;
    }
  }
  // cgroup v1: a child of the daemon's cgroup in the memory hierarchy and one in the pids hierarchy.
  if (std::string parent = V1Parent("memory"); !parent.empty()) {
    std::string path = parent + "/" + NextName();
    int fd = MakeCgroup(path, {{"memory.limit_in_bytes", std::to_string(limits.memory_bytes)},
                               {"?memory.swappiness", "0"}});
    if (fd >= 0) {
      cg->memory_path_ = path;
      cg->procs_fds_.push_back(fd);
    }
  }
  if (std::string parent = V1Parent("pids"); !parent.empty()) {
    std::string path = parent + "/" + NextName();
    if (int fd = MakeCgroup(path, {{"pids.max", std::to_string(limits.max_tasks)}}); fd >= 0) {
      cg->pids_path_ = path;
      cg->procs_fds_.push_back(fd);
    }
  }
  if (cg->procs_fds_.empty()) return nullptr;
  return cg;
}

namespace {

void KillEverythingIn(std::string const& path, bool v2) {
  if (v2 && WriteFile(path + "/cgroup.kill", "1")) return;  // Linux 5.14 and later
  // Older kernels: kill what the list shows, until it is empty (a fork may race the first pass).
  for (int pass = 0; pass < 20; ++pass) {
    std::ifstream procs(path + "/cgroup.procs");
    pid_t pid = 0;
    bool any = false;
    while (procs >> pid) {
      kill(pid, SIGKILL);
      any = true;
    }
    if (!any) break;
    usleep(1000);
  }
}

void RemoveCgroup(std::string const& path) {
  // Fails while a killed process is not yet gone; the empty directory is harmless then.
  for (int i = 0; i < 50 && rmdir(path.c_str()) != 0 && errno == EBUSY; ++i) usleep(2000);
}

}  // namespace

void InstanceCgroup::KillAll() const {
  for (std::string const* path : {&memory_path_, &pids_path_}) {
    if (!path->empty()) KillEverythingIn(*path, v2_);
  }
}

int InstanceCgroup::CleanUpAfterDeadDaemons() {
  int removed = 0;
  std::string v2 = OwnCgroup(nullptr);
  std::vector<std::pair<std::string, bool>> parents;  // directory, v2
  if (!v2.empty()) parents.emplace_back("/sys/fs/cgroup" + v2, true);
  for (char const* controller : {"memory", "pids"}) {
    if (std::string parent = V1Parent(controller); !parent.empty()) parents.emplace_back(parent, false);
  }
  for (auto const& [parent, is_v2] : parents) {
    std::error_code ec;
    for (auto const& entry : std::filesystem::directory_iterator(parent, ec)) {
      // "ferry-PID-N", made by the daemon PID: left behind when that daemon is no longer running.
      std::string name = entry.path().filename().string();
      if (name.rfind("ferry-", 0) != 0 || !entry.is_directory(ec)) continue;
      long pid = std::strtol(name.c_str() + 6, nullptr, 10);
      if (pid <= 0 || pid == getpid() || kill(static_cast<pid_t>(pid), 0) == 0) continue;
      KillEverythingIn(entry.path().string(), is_v2);
      RemoveCgroup(entry.path().string());
      ++removed;
    }
  }
  return removed;
}

InstanceCgroup::~InstanceCgroup() {
  for (int fd : procs_fds_) close(fd);
  KillAll();
  for (std::string const* path : {&memory_path_, &pids_path_}) {
    if (path->empty() || (path == &pids_path_ && pids_path_ == memory_path_)) continue;
    RemoveCgroup(*path);
  }
}

bool InstanceCgroup::OomKilled() const {
  if (memory_path_.empty()) return false;
  // v2: memory.events "oom_kill N"; v1: memory.oom_control "oom_kill N" (Linux 4.13 and later).
  std::ifstream in(memory_path_ + (v2_ ? "/memory.events" : "/memory.oom_control"));
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") return value > 0;
  }
  return false;
}

}  // namespace ferry
