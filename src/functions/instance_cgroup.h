#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ferry {

// The cgroups of one instance, so the kernel enforces its limits at once: its memory (rather than a sampler
// noticing it up to 100 ms late) and its number of processes and threads (so a fork bomb fails its own forks and
// nothing else's). cgroup v2 (`memory.max`, `pids.max` in one cgroup) where the daemon's cgroup delegates those
// controllers to children, else cgroup v1 (a child of the daemon's cgroup in the memory hierarchy,
// `memory.limit_in_bytes` with swappiness 0, and one in the pids hierarchy, `pids.max`), each where writable:
// the Supervisor's RSS watchdog stays the backstop for memory either way.
class InstanceCgroup {
 public:
  struct Limits {
    int64_t memory_bytes = 0;
    int64_t max_tasks = 0;  // processes and threads together, as pids.max counts them
  };
  // nullptr when no cgroup hierarchy for either limit is writable.
  static std::unique_ptr<InstanceCgroup> Create(Limits limits);
  ~InstanceCgroup();  // kills what is left in its cgroups, then removes them
  InstanceCgroup(InstanceCgroup const&) = delete;
  InstanceCgroup& operator=(InstanceCgroup const&) = delete;

  // Descriptors of the cgroups' cgroup.procs, open for writing: a child writes "0" to each to join before exec.
  [[nodiscard]] std::vector<int> const& procs_fds() const { return procs_fds_; }
  // True once the kernel has OOM-killed a process in it.
  [[nodiscard]] bool OomKilled() const;
  // Whether each limit is enforced by the kernel here.
  [[nodiscard]] bool limits_memory() const { return !memory_path_.empty(); }
  [[nodiscard]] bool limits_tasks() const { return !pids_path_.empty(); }
  [[nodiscard]] char const* kind() const { return v2_ ? "cgroup v2" : "cgroup v1"; }
  // SIGKILLs every process in its cgroups: those that left the instance's process group too.
  void KillAll() const;
  // Kills what is left in the cgroups of daemons that are gone (a kill -9 leaves those of processes that left
  // their instance's group behind) and removes them. Returns how many it removed.
  static int CleanUpAfterDeadDaemons();

 private:
  InstanceCgroup() = default;
  bool v2_ = false;
  std::string memory_path_;  // the cgroup with the memory limit ("" when none)
  std::string pids_path_;    // the cgroup with pids.max (the same one under v2; "" when none)
  std::vector<int> procs_fds_;
};

}  // namespace ferry
