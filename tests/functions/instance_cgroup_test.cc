#include "functions/instance_cgroup.h"

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <fstream>
#include <sstream>
#include <thread>

#include "functions/child_process.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

std::unique_ptr<ChildProcess> RunPython(InstanceCgroup const& cgroup, std::string const& python,
                                       LineHandler on_line = nullptr) {
  ProcessOptions options{.argv = {"python3", "-c", python}, .cgroup_procs_fds = cgroup.procs_fds()};
  auto child = ChildProcess::Spawn(options, std::move(on_line));
  EXPECT_TRUE(child.ok()) << child.status().message();
  return child.ok() ? *std::move(child) : nullptr;
}

bool WaitExit(ChildProcess& child, milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!child.Exited()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

TEST(InstanceCgroupTest, TheKernelKillsAProcessOverTheLimitAndSaysSo) {
  auto cgroup = InstanceCgroup::Create({.memory_bytes = 64 << 20, .max_tasks = 64});
  if (!cgroup || !cgroup->limits_memory()) GTEST_SKIP() << "no writable memory cgroup here; the Supervisor's RSS watchdog enforces limits";
  auto hog = RunPython(*cgroup, "x = bytearray(400 << 20); import time; time.sleep(10)");
  ASSERT_NE(hog, nullptr);
  ASSERT_TRUE(WaitExit(*hog, milliseconds(5000))) << "not killed";
  EXPECT_EQ(hog->ExitDescription(), "killed by signal 9");
  EXPECT_TRUE(cgroup->OomKilled()) << cgroup->kind();
}

TEST(InstanceCgroupTest, AProcessUnderTheLimitRunsUntouched) {
  auto cgroup = InstanceCgroup::Create({.memory_bytes = 256 << 20, .max_tasks = 64});
  if (!cgroup || !cgroup->limits_memory()) GTEST_SKIP() << "no writable memory cgroup here";
  auto ok = RunPython(*cgroup, "x = bytearray(16 << 20); import sys; sys.exit(3)");
  ASSERT_NE(ok, nullptr);
  ASSERT_TRUE(WaitExit(*ok, milliseconds(5000)));
  EXPECT_EQ(ok->ExitDescription(), "exit status 3");
  EXPECT_FALSE(cgroup->OomKilled());
}

// A fork bomb gets at most max_tasks processes; its forks beyond fail, and every process it made (those that
// left its process group too) dies with the cgroup.
TEST(InstanceCgroupTest, AForkBombIsCappedAndDiesWithTheCgroup) {
  auto cgroup = InstanceCgroup::Create({.memory_bytes = 512 << 20, .max_tasks = 32});
  if (!cgroup || !cgroup->limits_tasks()) GTEST_SKIP() << "no writable pids cgroup here";
  std::mutex mu;
  std::string out;
  auto bomb = RunPython(*cgroup, R"(
import os, sys, time
made, refused = [], 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        os.setsid()  # leaves the process group: only the cgroup still holds it
        time.sleep(60)
        os._exit(0)
    made.append(pid)
print("made", len(made), "refused", refused, "pids", ",".join(map(str, made)), flush=True)
time.sleep(60)
)", [&](bool, std::string line) {
    std::lock_guard lock(mu);
    out += line;
  });
  ASSERT_NE(bomb, nullptr);
  auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mu);
      if (out.find("pids") != std::string::npos) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::string report;
  {
    std::lock_guard lock(mu);
    report = out;
  }
  int made = 0, refused = 0;
  ASSERT_EQ(std::sscanf(report.c_str(), "made %d refused %d", &made, &refused), 2) << report;
  EXPECT_LT(made, 32) << report;
  EXPECT_GT(refused, 100) << report;
  std::vector<pid_t> children;
  std::istringstream pids(report.substr(report.find("pids ") + 5));
  for (std::string pid; std::getline(pids, pid, ',');) children.push_back(std::stoi(pid));
  ASSERT_FALSE(children.empty());

  bomb->Kill();  // the process group: the children in their own sessions survive it
  ASSERT_TRUE(WaitExit(*bomb, milliseconds(5000)));
  EXPECT_EQ(kill(children.front(), 0), 0) << "expected the escaped child alive until the cgroup goes";
  cgroup.reset();
  // Killed: gone (reaped by init) or a zombie until then. A SIGKILLed process may take a moment to die on a busy
  // machine, so each gets a few seconds.
  auto dead = [](pid_t child) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z" || state == "X";
  };
  for (pid_t child : children) {
    auto until = std::chrono::steady_clock::now() + milliseconds(5000);
    while (!dead(child) && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(milliseconds(10));
    EXPECT_TRUE(dead(child)) << "child " << child << " still running";
  }
}

}  // namespace
}  // namespace ferry
