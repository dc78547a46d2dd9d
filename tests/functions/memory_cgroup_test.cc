#include "functions/memory_cgroup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "functions/child_process.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

std::unique_ptr<ChildProcess> RunPython(MemoryCgroup const& cgroup, std::string const& python) {
  ProcessOptions options{.argv = {"python3", "-c", python}, .cgroup_procs_fd = cgroup.procs_fd()};
  auto child = ChildProcess::Spawn(options, nullptr);
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

TEST(MemoryCgroupTest, TheKernelKillsAProcessOverTheLimitAndSaysSo) {
  auto cgroup = MemoryCgroup::Create(64 << 20);
  if (!cgroup) GTEST_SKIP() << "no writable memory cgroup here; the Supervisor's RSS watchdog enforces limits";
  auto hog = RunPython(*cgroup, "x = bytearray(400 << 20); import time; time.sleep(10)");
  ASSERT_NE(hog, nullptr);
  ASSERT_TRUE(WaitExit(*hog, milliseconds(5000))) << "not killed";
  EXPECT_EQ(hog->ExitDescription(), "killed by signal 9");
  EXPECT_TRUE(cgroup->OomKilled()) << cgroup->kind();
}

TEST(MemoryCgroupTest, AProcessUnderTheLimitRunsUntouched) {
  auto cgroup = MemoryCgroup::Create(256 << 20);
  if (!cgroup) GTEST_SKIP() << "no writable memory cgroup here";
  auto ok = RunPython(*cgroup, "x = bytearray(16 << 20); import sys; sys.exit(3)");
  ASSERT_NE(ok, nullptr);
  ASSERT_TRUE(WaitExit(*ok, milliseconds(5000)));
  EXPECT_EQ(ok->ExitDescription(), "exit status 3");
  EXPECT_FALSE(cgroup->OomKilled());
}

}  // namespace
}  // namespace ferry
