#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace ferry {

// A memory cgroup for one instance, so the kernel enforces its memory limit at once rather than a sampler
// noticing it up to 100 ms late. cgroup v2 (`memory.max`) where the daemon's cgroup allows children with the
// memory controller, else cgroup v1 (`memory.limit_in_bytes`, swappiness 0), else none: the Supervisor's RSS
// watchdog stays the backstop either way.
class MemoryCgroup {
 public:
  // nullptr when no writable memory cgroup hierarchy is available.
  static std::unique_ptr<MemoryCgroup> Create(int64_t limit_bytes);
  ~MemoryCgroup();  // removes the cgroup (once its processes are gone)
  MemoryCgroup(MemoryCgroup const&) = delete;
  MemoryCgroup& operator=(MemoryCgroup const&) = delete;

  // A descriptor of its cgroup.procs, open for writing: a child writes "0" to it to join before exec.
  [[nodiscard]] int procs_fd() const { return procs_fd_; }
  // True once the kernel has OOM-killed a process in it.
  [[nodiscard]] bool OomKilled() const;
  [[nodiscard]] char const* kind() const { return v2_ ? "cgroup v2" : "cgroup v1"; }

 private:
  MemoryCgroup(std::string path, bool v2, int procs_fd) : path_(std::move(path)), v2_(v2), procs_fd_(procs_fd) {}
  std::string path_;
  bool v2_;
  int procs_fd_;
};

}  // namespace ferry
