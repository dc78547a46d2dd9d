#include "functions/memory_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

namespace ferry {
namespace {

// The daemon's own cgroup path in a hierarchy, from /proc/self/cgroup: "0::/path" for v2, "N:memory:/path" for v1.
std::string OwnCgroup(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find(':');
    auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    bool match = v2 ? (line.substr(0, first) == "0" && controllers.empty())
                    : (("," + controllers + ",").find(",memory,") != std::string::npos);
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

// Makes `path` a cgroup limited to `limit_bytes` through `limit_file`, with `swap_file` set to 0 where the
// kernel has it; returns a descriptor of its cgroup.procs, or -1 (and nothing left behind).
int MakeCgroup(std::string const& path, char const* limit_file, int64_t limit_bytes, char const* swap_file) {
  if (mkdir(path.c_str(), 0755) != 0) return -1;
  (void)WriteFile(path + "/" + swap_file, "0");  // optional: not every kernel has it
  int fd = -1;
  if (WriteFile(path + "/" + limit_file, std::to_string(limit_bytes))) {
    fd = open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) rmdir(path.c_str());
  return fd;
}

}  // namespace

std::unique_ptr<MemoryCgroup> MemoryCgroup::Create(int64_t limit_bytes) {
  // cgroup v2: a child of the daemon's cgroup, when that has the memory controller enabled for children.
  std::string v2 = OwnCgroup(true);
  std::ifstream subtree("/sys/fs/cgroup" + v2 + "/cgroup.subtree_control");
  std::string controllers((std::istreambuf_iterator<char>(subtree)), std::istreambuf_iterator<char>());
  if (!v2.empty() && controllers.find("memory") != std::string::npos) {
    std::string path = "/sys/fs/cgroup" + v2 + "/" + NextName();
    int fd = MakeCgroup(path, "memory.max", limit_bytes, "memory.swap.max");
    if (fd >= 0) return std::unique_ptr<MemoryCgroup>(new MemoryCgroup(path, true, fd));
  }
  // cgroup v1: a child of the daemon's memory cgroup.
  std::string v1 = OwnCgroup(false);
  if (v1.empty() && access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) != 0) return nullptr;
  std::string path = "/sys/fs/cgroup/memory" + (v1 == "/" ? std::string() : v1) + "/" + NextName();
  int fd = MakeCgroup(path, "memory.limit_in_bytes", limit_bytes, "memory.swappiness");
  if (fd < 0) return nullptr;
  return std::unique_ptr<MemoryCgroup>(new MemoryCgroup(path, false, fd));
}

MemoryCgroup::~MemoryCgroup() {
  close(procs_fd_);
  // Fails while a process is still in it (a grandchild the kill missed); the empty directory is harmless then.
  for (int i = 0; i < 50 && rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) usleep(2000);
}

bool MemoryCgroup::OomKilled() const {
  // v2: memory.events "oom_kill N"; v1: memory.oom_control "oom_kill N" (Linux 4.13 and later).
  std::ifstream in(path_ + (v2_ ? "/memory.events" : "/memory.oom_control"));
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") return value > 0;
  }
  return false;
}

}  // namespace ferry
