#include "functions/supervisor.h"
#include "functions/child_process.h"

#include "common/base64.h"
#include "testing/temp_dir.h"
#include "testing/thread_sleeps.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry {
namespace {

using ::ferry::testing::SleepsOfThreads;
using ::std::chrono::milliseconds;
using ::testing::HasSubstr;

// The function program built from tests/sdk/test_functions_main.cc.
std::string TestProgram() { return FERRY_TEST_FUNCTIONS; }

// Function "fn": the test program's `entry_point`, 5 s timeout.
InstanceSpec Spec(std::string entry_point) {
  InstanceSpec spec;
  spec.function = "fn";
  spec.entry_point = std::move(entry_point);
  spec.process.argv = {TestProgram()};
  spec.timeout = milliseconds(5000);
  return spec;
}

std::string LegacyEvent(std::string const& data_json) {
  std::string b64 = Base64Encode(data_json);
  return R"({"context": {"eventId": "1", "eventType": "google.pubsub.topic.publish", "resource": )"
         R"("projects/p/topics/t"}, "data": {"data": ")" + b64 + R"("}})";
}

struct Line {
  std::string execution_id;
  bool is_stderr;
  std::string text;
};

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest()
      : supervisor_([this](std::string const&, InstanceLine line) {
          std::lock_guard lock(mu_);
          lines_.push_back({line.execution_id, line.is_stderr, line.message});
        }) {}

  InvocationResult Call(std::string const& data_json, std::string execution_id = "e1") {
    return supervisor_.Invoke("fn", Invocation{.execution_id = std::move(execution_id), .body = LegacyEvent(data_json)});
  }

  // An invocation through TryInvokeAsync on an event loop of the test's: nullopt when it was not taken.
  std::optional<InvocationResult> CallAsync(boost::asio::io_context& io, std::string const& data_json,
                                            std::string execution_id = "a1") {
    std::optional<InvocationResult> out;
    bool taken = supervisor_.TryInvokeAsync(
        "fn", Invocation{.execution_id = std::move(execution_id), .body = LegacyEvent(data_json)}, io,
        [&](InvocationResult r) { out = std::move(r); });
    if (!taken) return std::nullopt;
    io.restart();
    io.run();
    EXPECT_TRUE(out.has_value()) << "the loop ran out of work before the answer";
    return out;
  }

  std::vector<Line> LinesOf(std::string const& execution) {
    std::lock_guard lock(mu_);
    std::vector<Line> out;
    for (auto const& l : lines_) {
      if (l.execution_id == execution) out.push_back(l);
    }
    return out;
  }

  std::mutex mu_;
  std::vector<Line> lines_;
  Supervisor supervisor_;
};

// The order fix behind every execution's log: lines a process wrote are handled before WaitOutputDrained returns,
// however slow their handling. Without it, the answer of a call could be recorded before its last lines (they come
// by pipe, the answer by socket), and lines handled after the instance moved on lost their execution.
// A process that wrote three lines, with a line handler that takes 100 ms a line; made once the first is handled
// (so the output is written, and the rest is on its way).
struct SlowlyHandled {
  std::mutex mu;
  std::vector<std::string> handled;  // GUARDED_BY(mu)
  std::unique_ptr<ChildProcess> child;

  SlowlyHandled() {
    auto spawned = ChildProcess::Spawn({.argv = {"sh", "-c", "printf '1\\n2\\n3\\n'; sleep 30"}},
                                       [this](bool, std::string line) {
                                         std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a slow log
                                         std::lock_guard lock(mu);
                                         handled.push_back(std::move(line));
                                       });
    EXPECT_TRUE(spawned.ok()) << spawned.status().message();
    if (!spawned.ok()) return;
    child = *std::move(spawned);
    for (int i = 0; i < 500; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::lock_guard lock(mu);
      if (!handled.empty()) break;
    }
  }
  std::vector<std::string> Handled() {
    std::lock_guard lock(mu);
    return handled;
  }
};

TEST(ChildProcessTest, WaitOutputDrainedReturnsOnceEveryLineWrittenIsHandled) {
  SlowlyHandled p;
  ASSERT_NE(p.child, nullptr);
  EXPECT_TRUE(p.child->WaitOutputDrained(std::chrono::seconds(10)));
  EXPECT_THAT(p.Handled(), ::testing::ElementsAre("1", "2", "3"));
}

// The same order for a waiter without a thread (an HTTP call on the event loop): it is called once, after the
// last line written so far is handled, and not before.
TEST(ChildProcessTest, WhenOutputDrainedCallsBackOnceEveryLineWrittenIsHandled) {
  SlowlyHandled p;
  ASSERT_NE(p.child, nullptr);
  std::promise<std::vector<std::string>> seen;
  std::atomic<int> calls{0};
  uint64_t token = p.child->WhenOutputDrained([&] {
    if (calls++ == 0) seen.set_value(p.Handled());
  });
  ASSERT_NE(token, 0u) << "the lines were handled before the test could wait for them";
  auto got = seen.get_future();
  ASSERT_EQ(got.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_THAT(got.get(), ::testing::ElementsAre("1", "2", "3"));
  p.child->CancelWhenDrained(token);
  EXPECT_EQ(p.child->WhenOutputDrained([] { FAIL() << "drained already: nothing to call"; }), 0u);
  EXPECT_EQ(calls.load(), 1);
}

// An event loop on a thread of its own, as the daemon runs the HTTP server's.
struct LoopThread {
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work = boost::asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  ~LoopThread() {
    work.reset();
    io.stop();
    thread.join();
  }
  // Runs `fn` on the loop and waits for it.
  template <typename F>
  auto On(F fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    boost::asio::post(io, [&task] { task(); });
    return result.get();
  }
};

// Threads of this process named so (the reader threads of ChildProcess are "ferry-fn-output").
int ThreadsNamed(std::string const& name) {
  int count = 0;
  for (auto const& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string got;
    std::getline(comm, got);
    if (got == name) ++count;
  }
  return count;
}

struct SeenLines {
  std::mutex mu;
  std::vector<std::string> lines;            // GUARDED_BY(mu)
  std::set<std::thread::id> threads;         // GUARDED_BY(mu): where they were handled
  LineHandler Handler() {
    return [this](bool, std::string line) {
      std::lock_guard lock(mu);
      lines.push_back(std::move(line));
      threads.insert(std::this_thread::get_id());
    };
  }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu);
    return lines;
  }
  bool WaitFor(std::size_t n) {
    for (int i = 0; i < 1000; ++i) {
      if (Lines().size() >= n) return true;
      std::this_thread::sleep_for(milliseconds(5));
    }
    return false;
  }
};

// With an output loop, no thread of its own reads a child's output: the loop does, in order, and the last line
// without a newline is handled at the end.
TEST(ChildProcessTest, OnAnOutputLoopTheOutputIsReadThereWithNoThreadOfItsOwn) {
  LoopThread loop;
  SeenLines seen;
  int readers_before = ThreadsNamed("ferry-fn-output");
  auto child = ChildProcess::Spawn({.argv = {"sh", "-c", "printf '1\\n2\\n'; sleep 0.3; printf 'last'"}},
                                   seen.Handler(), {.io = &loop.io});
  ASSERT_TRUE(child.ok()) << child.status().message();
  ASSERT_TRUE(seen.WaitFor(2));
  EXPECT_EQ(ThreadsNamed("ferry-fn-output"), readers_before);
  EXPECT_TRUE((*child)->WaitOutputRead(std::chrono::seconds(10)));
  EXPECT_THAT(seen.Lines(), ::testing::ElementsAre("1", "2", "last"));
  std::lock_guard lock(seen.mu);
  EXPECT_TRUE(seen.threads.contains(loop.thread.get_id()));  // "1" and "2" at least, as they came
}

// A full sink (may_read false) pauses the reading: the child's writes block instead of the loop; once there is
// room again, every line arrives.
TEST(ChildProcessTest, OnAnOutputLoopAFullSinkPausesTheReading) {
  LoopThread loop;
  SeenLines seen;
  std::atomic<bool> room{false};
  // 4,000 lines of 100 bytes: far more than a pipe holds.
  auto child = ChildProcess::Spawn(
      {.argv = {"sh", "-c", "i=0; while [ $i -lt 4000 ]; do printf '%099d\\n' $i; i=$((i+1)); done"}},
      seen.Handler(), {.io = &loop.io, .may_read = [&] { return room.load(); }});
  ASSERT_TRUE(child.ok()) << child.status().message();
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_FALSE((*child)->Exited()) << "its writes should wait for room";
  EXPECT_FALSE((*child)->TryDrainOutput());  // a call's drain on the loop does not wait for room either
  EXPECT_TRUE(seen.Lines().empty());
  room = true;
  ASSERT_TRUE(seen.WaitFor(4000));
  for (int i = 0; i < 400 && !(*child)->Exited(); ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_TRUE((*child)->Exited());
  EXPECT_EQ(seen.Lines().size(), 4000u);
}

// A waiter reads what is left itself, so the lines are whole even when the loop is not running (before the HTTP
// server starts, or after it stopped); and the child may be destroyed on the loop's own thread.
TEST(ChildProcessTest, OnAnOutputLoopWaitersReadForThemselvesAndTheLoopMayDestroyIt) {
  boost::asio::io_context idle;  // never run
  SeenLines seen;
  auto child = ChildProcess::Spawn({.argv = {"sh", "-c", "printf 'a\\nb\\n'; sleep 30"}}, seen.Handler(),
                                   {.io = &idle});
  ASSERT_TRUE(child.ok()) << child.status().message();
  for (int i = 0; i < 200 && seen.Lines().size() < 2; ++i) {  // the shell writes a moment after it starts
    EXPECT_TRUE((*child)->WaitOutputDrained(milliseconds(50)));
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_THAT(seen.Lines(), ::testing::ElementsAre("a", "b"));

  LoopThread loop;
  SeenLines last;
  auto other = ChildProcess::Spawn({.argv = {"sh", "-c", "printf 'x\\n'; sleep 0.2; printf 'y\\n'; sleep 30"}},
                                   last.Handler(), {.io = &loop.io});
  ASSERT_TRUE(other.ok()) << other.status().message();
  ASSERT_TRUE(last.WaitFor(2));
  auto start = std::chrono::steady_clock::now();
  loop.On([&] {
    other->reset();  // killed, its pipes read to their end here, and the loop lets go of them
    return 0;
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_THAT(last.Lines(), ::testing::ElementsAre("x", "y"));
}

// The C++ SDK and the Python runner listen on a Unix socket Ferry names, in a directory only Ferry's user may
// enter; both call paths reach it, and the socket goes with the instance.
TEST_F(SupervisorTest, AFerryRuntimeInstanceListensOnAPrivateUnixSocket) {
  testing::TempDir dir;
  std::string env_file = dir.path() + "/env";
  InstanceSpec spec = Spec("greet");
  spec.unix_socket = true;
  spec.process.argv = {"sh", "-c", "env > '" + env_file + "' && exec '" + TestProgram() + "'"};
  supervisor_.Deploy(spec);
  EXPECT_EQ(Call(R"({"name": "ada"})").status, ExecutionStatus::kOk);
  boost::asio::io_context io;
  auto async = CallAsync(io, R"({"name": "bob"})");
  ASSERT_TRUE(async.has_value());
  EXPECT_EQ(async->status, ExecutionStatus::kOk) << async->error;

  std::ifstream in(env_file);
  std::string socket_path, line;
  bool port = false;
  while (std::getline(in, line)) {
    if (line.rfind("FERRY_UNIX_SOCKET=", 0) == 0) socket_path = line.substr(line.find('=') + 1);
    if (line.rfind("PORT=", 0) == 0) port = true;
  }
  ASSERT_FALSE(socket_path.empty());
  EXPECT_FALSE(port) << "no loopback port to reach it by";
  EXPECT_TRUE(std::filesystem::is_socket(socket_path));
  auto perms = std::filesystem::status(std::filesystem::path(socket_path).parent_path()).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
  supervisor_.Remove("fn");
  for (int i = 0; i < 200 && std::filesystem::exists(socket_path); ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_FALSE(std::filesystem::exists(socket_path));
}

TEST_F(SupervisorTest, RunsAnInvocationAndTagsItsLogLines) {
  supervisor_.Deploy(Spec("greet"));
  auto result = Call(R"({"name": "ada"})", "exec-ada");
  EXPECT_EQ(result.status, ExecutionStatus::kOk) << result.error;
  EXPECT_EQ(result.http_status, 200);
  // Lines travel through a pipe: wait for the last one.
  for (int i = 0; i < 200 && LinesOf("exec-ada").size() < 3; ++i) std::this_thread::sleep_for(milliseconds(5));
  auto lines = LinesOf("exec-ada");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0].text, HasSubstr("Started greet!"));
  EXPECT_THAT(lines[1].text, HasSubstr("greeting ada"));
  EXPECT_THAT(lines[2].text, HasSubstr("Completed greet!"));
}

TEST_F(SupervisorTest, AnErrorAnswerIsAFailureAndTheInstanceStays) {
  supervisor_.Deploy(Spec("explode"));
  auto result = Call("{}");
  EXPECT_EQ(result.status, ExecutionStatus::kError);
  EXPECT_THAT(result.error, HasSubstr("the database is down"));
  Call("{}");
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 1);
}

TEST_F(SupervisorTest, TimeoutFailsTheInvocationAndReplacesTheInstance) {
  auto spec = Spec("sleepy");
  spec.timeout = milliseconds(300);
  supervisor_.Deploy(spec);
  auto slow = Call(R"({"ms": 5000})");
  EXPECT_EQ(slow.status, ExecutionStatus::kTimeout);
  auto fast = Call(R"({"ms": 1})");
  EXPECT_EQ(fast.status, ExecutionStatus::kOk) << fast.error;
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 2);
}

TEST_F(SupervisorTest, CrashFailsTheInvocationAndALaterOneSucceeds) {
  supervisor_.Deploy(Spec("crash"));
  auto crashed = Call("{}");
  EXPECT_EQ(crashed.status, ExecutionStatus::kCrash);
  EXPECT_THAT(crashed.error, HasSubstr("about to crash"));
  supervisor_.Deploy(Spec("greet"));  // same function, fixed code
  EXPECT_EQ(Call("{}").status, ExecutionStatus::kOk);
}

TEST_F(SupervisorTest, MemoryLimitKillsTheInstanceAsOom) {
  auto spec = Spec("hog");
  spec.memory_mb = 64;
  supervisor_.Deploy(spec);
  auto hog = Call(R"({"mb": 200})");
  EXPECT_EQ(hog.status, ExecutionStatus::kOom) << hog.error;
  auto small = Call(R"({"mb": 1})");
  EXPECT_EQ(small.status, ExecutionStatus::kOk) << small.error;
}

TEST_F(SupervisorTest, MinInstancesAreStartedBeforeAnyInvocationAndKeptWarm) {
  auto spec = Spec("greet");
  spec.max_instances = 3;
  spec.min_instances = 2;
  spec.idle_timeout = milliseconds(50);  // idle ones above the minimum would stop at once
  supervisor_.Deploy(spec);
  for (int i = 0; i < 100 && supervisor_.UsageOf("fn").running < 2; ++i) std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(supervisor_.UsageOf("fn").running, 2);
  EXPECT_EQ(Call("{}").status, ExecutionStatus::kOk);
  std::this_thread::sleep_for(milliseconds(500));  // several watchdog rounds past the idle timeout
  EXPECT_EQ(supervisor_.UsageOf("fn").running, 2);
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 2);
}

// The watchdog (memory limits, idle timeouts, deaths) runs while an instance is up, and sleeps while none is; the
// warmer sleeps while no function has a minimum to keep.
TEST_F(SupervisorTest, AnIdleInstanceStopsAndThenTheWatchdogSleeps) {
  auto spec = Spec("greet");
  spec.idle_timeout = milliseconds(50);
  std::this_thread::sleep_for(milliseconds(100));  // the watchdog is waiting
  long const before = SleepsOfThreads("ferry-watch");
  long const warmer = SleepsOfThreads("ferry-warm");
  ASSERT_GE(before, 0) << "no such thread";
  ASSERT_GE(warmer, 0) << "no such thread";
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_LE(SleepsOfThreads("ferry-watch") - before, 1) << "woke with nothing to watch";
  EXPECT_LE(SleepsOfThreads("ferry-warm") - warmer, 1) << "woke with nothing to start";

  supervisor_.Deploy(spec);
  EXPECT_EQ(Call("{}").status, ExecutionStatus::kOk);
  EXPECT_EQ(supervisor_.UsageOf("fn").running, 1);
  for (int i = 0; i < 100 && supervisor_.UsageOf("fn").running > 0; ++i) std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(supervisor_.UsageOf("fn").running, 0) << "the idle instance was not stopped";

  std::this_thread::sleep_for(milliseconds(300));  // its last round
  long const idle = SleepsOfThreads("ferry-watch");
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_LE(SleepsOfThreads("ferry-watch") - idle, 1);
}

TEST_F(SupervisorTest, NeverRunsMoreThanMaxInstancesAtOnce) {
  auto spec = Spec("sleepy");
  spec.max_instances = 2;
  supervisor_.Deploy(spec);
  std::vector<std::future<InvocationResult>> calls;
  for (int i = 0; i < 8; ++i) {
    calls.push_back(std::async(std::launch::async, [this, i] { return Call(R"({"ms": 100})", "x" + std::to_string(i)); }));
  }
  for (auto& c : calls) EXPECT_EQ(c.get().status, ExecutionStatus::kOk);
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 2);
  // Overlap measured inside the function: begin/end stamps on the monotonic clock, whose lines come through the
  // instances' pipes a moment after the answers.
  for (int i = 0; i < 400; ++i) {
    std::size_t stamped = 0;
    for (int c = 0; c < 8; ++c) {
      for (auto const& l : LinesOf("x" + std::to_string(c))) {
        stamped += l.text.rfind("begin ", 0) == 0 || l.text.rfind("end ", 0) == 0;
      }
    }
    if (stamped >= 16) break;  // a begin and an end for each of the 8 calls
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::vector<std::pair<int64_t, int>> edges;
  {
    std::lock_guard lock(mu_);
    for (auto const& l : lines_) {
      auto begin = l.text.find("begin ");
      auto end = l.text.find("end ");
      if (begin != std::string::npos) edges.emplace_back(std::stoll(l.text.substr(begin + 6)), +1);
      else if (end != std::string::npos && l.text.find("Completed") == std::string::npos) edges.emplace_back(std::stoll(l.text.substr(end + 4)), -1);
    }
  }
  std::sort(edges.begin(), edges.end());
  int running = 0, peak = 0;
  for (auto const& [t, d] : edges) peak = std::max(peak, running += d);
  EXPECT_EQ(edges.size(), 16u);
  EXPECT_EQ(peak, 2);
}

TEST_F(SupervisorTest, AsyncInvocationRunsOnTheCallersLoopAndReusesItsConnection) {
  supervisor_.Deploy(Spec("greet"));
  boost::asio::io_context io;
  // No instance yet: starting one would block, so the call is left to Invoke.
  EXPECT_FALSE(CallAsync(io, "{}").has_value());
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 0);
  EXPECT_EQ(Call("{}").status, ExecutionStatus::kOk);

  for (std::string name : {"ada", "bob", "cy"}) {
    auto result = CallAsync(io, R"({"name": ")" + name + R"("})", "async-" + name);
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(result->status, ExecutionStatus::kOk) << result->error;
    EXPECT_EQ(result->http_status, 200);
  }
  for (int i = 0; i < 200 && LinesOf("async-cy").size() < 3; ++i) std::this_thread::sleep_for(milliseconds(5));
  auto lines = LinesOf("async-bob");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[1].text, HasSubstr("greeting bob"));
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 1);
  EXPECT_EQ(supervisor_.UsageOf("fn").busy, 0);
}

TEST_F(SupervisorTest, AsyncInvocationTimesOutAndCrashesLikeABlockingOne) {
  auto spec = Spec("chaos");
  spec.timeout = milliseconds(300);
  supervisor_.Deploy(spec);
  boost::asio::io_context io;
  ASSERT_EQ(Call("{}").status, ExecutionStatus::kOk);
  auto slow = CallAsync(io, R"({"ms": 5000})");
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->status, ExecutionStatus::kTimeout);
  EXPECT_THAT(slow->error, HasSubstr("did not answer within 300 ms"));

  ASSERT_EQ(Call("{}").status, ExecutionStatus::kOk);  // on a new instance
  auto crashed = CallAsync(io, R"({"crash": true})");
  ASSERT_TRUE(crashed.has_value());
  EXPECT_EQ(crashed->status, ExecutionStatus::kCrash);
  EXPECT_THAT(crashed->error, HasSubstr("about to crash"));
  EXPECT_EQ(Call("{}").status, ExecutionStatus::kOk);
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 3);
}

// The calls on one loop share one timer for their deadlines: a call with a shorter timeout, made while a longer one
// is in flight, still ends at its own deadline, not the other's.
TEST_F(SupervisorTest, AShorterDeadlineMadeLaterOnTheSameLoopComesFirst) {
  auto slow = Spec("chaos");
  slow.timeout = milliseconds(10000);
  supervisor_.Deploy(slow);
  auto quick = Spec("chaos");
  quick.function = "quick";
  quick.timeout = milliseconds(300);
  supervisor_.Deploy(quick);
  ASSERT_EQ(Call("{}").status, ExecutionStatus::kOk);  // an instance of each, up (else the calls are not taken)
  ASSERT_EQ(supervisor_.Invoke("quick", Invocation{.execution_id = "w", .body = LegacyEvent("{}")}).status,
            ExecutionStatus::kOk);
  boost::asio::io_context io;
  std::vector<std::pair<std::string, ExecutionStatus>> answers;
  ASSERT_TRUE(supervisor_.TryInvokeAsync("fn", Invocation{.execution_id = "s", .body = LegacyEvent(R"({"ms": 3000})")},
                                         io, [&](InvocationResult r) { answers.emplace_back("slow", r.status); }));
  ASSERT_TRUE(supervisor_.TryInvokeAsync("quick",
                                         Invocation{.execution_id = "q", .body = LegacyEvent(R"({"ms": 8000})")}, io,
                                         [&](InvocationResult r) { answers.emplace_back("quick", r.status); }));
  io.run();
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0], std::make_pair(std::string("quick"), ExecutionStatus::kTimeout));
  EXPECT_EQ(answers[1], std::make_pair(std::string("slow"), ExecutionStatus::kOk));
}

// As the daemon runs it: the instances' output read on the event loop the HTTP calls run on. Each call's lines
// are its own (tagged by the order fix, read on the loop), a crash's last words reach its error, and no instance
// has reader threads.
class LoopSupervisorTest : public ::testing::Test {
 protected:
  LoopSupervisorTest()
      : supervisor_(
            [this](std::string const&, InstanceLine line) {
              std::lock_guard lock(mu_);
              lines_.push_back({line.execution_id, line.is_stderr, line.message});
            },
            {.io = &loop_.io}) {}

  InvocationResult CallOnLoop(std::string const& data_json, std::string execution_id) {
    std::promise<InvocationResult> answered;
    bool taken = loop_.On([&] {
      return supervisor_.TryInvokeAsync(
          "fn", Invocation{.execution_id = std::move(execution_id), .body = LegacyEvent(data_json)}, loop_.io,
          [&answered](InvocationResult r) { answered.set_value(std::move(r)); });
    });
    EXPECT_TRUE(taken);
    return answered.get_future().get();
  }
  std::vector<std::string> TextsOf(std::string const& execution) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (auto const& l : lines_) {
      if (l.execution_id == execution) out.push_back(l.text);
    }
    return out;
  }

  LoopThread loop_;
  std::mutex mu_;
  std::vector<Line> lines_;
  Supervisor supervisor_;
};

TEST_F(LoopSupervisorTest, CallsOnTheLoopGetTheirOwnLinesWithNoReaderThreads) {
  auto spec = Spec("greet");
  int readers_before = ThreadsNamed("ferry-fn-output");
  supervisor_.Deploy(spec);
  ASSERT_EQ(supervisor_.Invoke("fn", Invocation{.execution_id = "first", .body = LegacyEvent("{}")}).status,
            ExecutionStatus::kOk);
  for (std::string name : {"ada", "bob", "cy"}) {
    auto result = CallOnLoop(R"({"name": ")" + name + R"("})", "loop-" + name);
    EXPECT_EQ(result.status, ExecutionStatus::kOk) << result.error;
    // Every line the call wrote is handled, under its execution, by the time it is answered.
    auto texts = TextsOf("loop-" + name);
    ASSERT_EQ(texts.size(), 3u) << name;
    EXPECT_THAT(texts[1], HasSubstr("greeting " + name));
  }
  EXPECT_EQ(ThreadsNamed("ferry-fn-output"), readers_before);
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 1);
}

TEST_F(LoopSupervisorTest, ACrashOnTheLoopIsReportedWithItsLastWords) {
  auto spec = Spec("chaos");
  supervisor_.Deploy(spec);
  ASSERT_EQ(supervisor_.Invoke("fn", Invocation{.execution_id = "warm", .body = LegacyEvent("{}")}).status,
            ExecutionStatus::kOk);
  auto crashed = CallOnLoop(R"({"crash": true})", "crash");
  EXPECT_EQ(crashed.status, ExecutionStatus::kCrash);
  EXPECT_THAT(crashed.error, HasSubstr("about to crash"));
  EXPECT_EQ(supervisor_.Invoke("fn", Invocation{.execution_id = "after", .body = LegacyEvent("{}")}).status,
            ExecutionStatus::kOk);
}

// The busy instance's call goes on a thread of its own; these tests then queue calls behind it on `io`.
class QueuedSupervisorTest : public SupervisorTest {
 protected:
  // Deploys `spec` with one instance, started, and sets it busy with `busy_json` on another thread.
  void StartBusy(InstanceSpec spec, std::string busy_json) {
    spec.max_instances = 1;
    supervisor_.Deploy(spec);
    ASSERT_EQ(Call("{}", "warm").status, ExecutionStatus::kOk);
    busy_ = std::async(std::launch::async, [this, busy_json] { return Call(busy_json, "busy"); });
    for (int i = 0; i < 400 && supervisor_.UsageOf("fn").busy == 0; ++i) std::this_thread::sleep_for(milliseconds(5));
    ASSERT_EQ(supervisor_.UsageOf("fn").busy, 1);
  }

  // Queues a call on io_; its result lands in results_[execution_id].
  bool Queue(std::string const& data_json, std::string const& execution_id,
             std::shared_ptr<std::atomic<bool>> client_gone = nullptr) {
    return supervisor_.TryInvokeAsync(
        "fn", Invocation{.execution_id = execution_id, .body = LegacyEvent(data_json), .client_gone = client_gone},
        io_, [this, execution_id](InvocationResult r) { results_[execution_id] = r; });
  }

  // When the call began, as the function stamped it on the monotonic clock (its line may come a moment after
  // the answer); -1 when it never began.
  int64_t BeginOf(std::string const& execution_id) {
    for (int i = 0; i < 400; ++i) {
      for (auto const& l : LinesOf(execution_id)) {
        if (auto at = l.text.find("begin "); at != std::string::npos) return std::stoll(l.text.substr(at + 6));
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    return -1;
  }

  boost::asio::io_context io_;
  std::future<InvocationResult> busy_;
  std::map<std::string, InvocationResult> results_;  // only touched on io_'s thread, this one
};

TEST_F(QueuedSupervisorTest, AsyncCallsWaitTheirTurnWithoutAThreadAndRunInOrder) {
  StartBusy(Spec("sleepy"), R"({"ms": 300})");
  for (std::string id : {"q1", "q2", "q3"}) ASSERT_TRUE(Queue(R"({"ms": 1})", id));
  EXPECT_EQ(supervisor_.UsageOf("fn").queued, 3);
  io_.run();  // until every queued call has its answer
  EXPECT_EQ(busy_.get().status, ExecutionStatus::kOk);
  ASSERT_EQ(results_.size(), 3u);
  for (auto const& [id, r] : results_) EXPECT_EQ(r.status, ExecutionStatus::kOk) << id << ": " << r.error;
  // First come, first served: each began after the one before it (stamps on the monotonic clock).
  std::vector<int64_t> begins;
  for (std::string id : {"busy", "q1", "q2", "q3"}) begins.push_back(BeginOf(id));
  EXPECT_GE(begins.front(), 0);
  EXPECT_TRUE(std::is_sorted(begins.begin(), begins.end())) << ::testing::PrintToString(begins);
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 1);
  EXPECT_EQ(supervisor_.UsageOf("fn").busy, 0);
}

TEST_F(QueuedSupervisorTest, AQueuedAsyncCallGets429WhenTheTimeoutPassesBeforeItsTurn) {
  auto spec = Spec("sleepy");
  spec.timeout = milliseconds(2000);
  StartBusy(spec, R"({"ms": 1500})");
  ASSERT_TRUE(Queue(R"({"ms": 1500})", "served"));  // its turn comes at about 1.5 s, within its 2 s
  ASSERT_TRUE(Queue(R"({"ms": 1})", "late"));       // its turn would come at about 3 s
  io_.run();
  EXPECT_EQ(busy_.get().status, ExecutionStatus::kOk);
  EXPECT_EQ(results_["served"].status, ExecutionStatus::kOk) << results_["served"].error;
  EXPECT_EQ(results_["late"].http_status, 429);
  EXPECT_THAT(results_["late"].body, HasSubstr("no instance of function fn became free within its timeout"));
  EXPECT_TRUE(LinesOf("late").empty()) << "a call answered 429 never reaches the function";
}

TEST_F(QueuedSupervisorTest, AFullQueueAnswers429AtOnce) {
  StartBusy(Spec("sleepy"), R"({"ms": 1000})");
  for (int i = 0; i < kMaxQueuedCalls; ++i) ASSERT_TRUE(Queue(R"({"ms": 1})", "q" + std::to_string(i)));
  ASSERT_TRUE(Queue(R"({"ms": 1})", "overflow"));
  io_.run_one();  // the overflow's answer comes first: the busy call still runs
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_["overflow"].http_status, 429);
  EXPECT_THAT(results_["overflow"].body, HasSubstr("too many calls are waiting"));
  io_.run();
  EXPECT_EQ(results_.size(), static_cast<std::size_t>(kMaxQueuedCalls) + 1);
  for (auto const& [id, r] : results_) {
    if (id != "overflow") {
      EXPECT_EQ(r.status, ExecutionStatus::kOk) << id << ": " << r.error;
    }
  }
}

TEST_F(QueuedSupervisorTest, QueuedAsyncCallsGetANewInstanceWhenTheBusyOneCrashes) {
  StartBusy(Spec("chaos"), R"({"ms": 300, "crash": true})");
  ASSERT_TRUE(Queue("{}", "after-crash-1"));
  ASSERT_TRUE(Queue("{}", "after-crash-2"));
  io_.run();
  EXPECT_EQ(busy_.get().status, ExecutionStatus::kCrash);
  EXPECT_EQ(results_["after-crash-1"].status, ExecutionStatus::kOk) << results_["after-crash-1"].error;
  EXPECT_EQ(results_["after-crash-2"].status, ExecutionStatus::kOk) << results_["after-crash-2"].error;
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 2);
}

TEST_F(QueuedSupervisorTest, AQueuedAsyncCallWhoseCallerLeftNeverRuns) {
  StartBusy(Spec("sleepy"), R"({"ms": 300})");
  auto gone = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(Queue(R"({"ms": 1})", "left", gone));
  ASSERT_TRUE(Queue(R"({"ms": 1})", "stayed"));
  gone->store(true);  // as the server's I/O thread does when the connection closes
  io_.run();
  EXPECT_EQ(results_["left"].http_status, 499);
  EXPECT_EQ(results_["stayed"].status, ExecutionStatus::kOk);
  for (int i = 0; i < 400 && LinesOf("stayed").empty(); ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_FALSE(LinesOf("stayed").empty());
  EXPECT_TRUE(LinesOf("left").empty());
}

TEST_F(QueuedSupervisorTest, QueuedAsyncCallsAreAnsweredWhenTheFunctionIsRemoved) {
  StartBusy(Spec("sleepy"), R"({"ms": 1000})");
  ASSERT_TRUE(Queue(R"({"ms": 1})", "orphan"));
  supervisor_.Remove("fn");
  io_.run();
  ASSERT_EQ(results_.count("orphan"), 1u);
  EXPECT_NE(results_["orphan"].status, ExecutionStatus::kOk);
  EXPECT_THAT(results_["orphan"].error, HasSubstr("was removed"));
  busy_.wait();
}

TEST_F(QueuedSupervisorTest, ABlockingCallQueuedFirstIsServedFirst) {
  StartBusy(Spec("sleepy"), R"({"ms": 300})");
  auto blocking = std::async(std::launch::async, [this] { return Call(R"({"ms": 1})", "blocking"); });
  for (int i = 0; i < 400 && supervisor_.UsageOf("fn").queued == 0; ++i) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_EQ(supervisor_.UsageOf("fn").queued, 1);
  ASSERT_TRUE(Queue(R"({"ms": 1})", "async"));
  io_.run();
  EXPECT_EQ(blocking.get().status, ExecutionStatus::kOk);
  EXPECT_EQ(results_["async"].status, ExecutionStatus::kOk);
  int64_t blocking_began = BeginOf("blocking");
  EXPECT_GE(blocking_began, 0);
  EXPECT_LT(blocking_began, BeginOf("async"));
}

}  // namespace
}  // namespace ferry
