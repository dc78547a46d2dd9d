#include "store/execution_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::SizeIs;

constexpr char kFn[] = "projects/p/locations/local/functions/bar";

LogEntry Line(std::string execution_id, std::string message, int64_t time_ms = 1000) {
  return {0, time_ms, kFn, std::move(execution_id), "stdout", "INFO", std::move(message)};
}

class ExecutionLogTest : public ::testing::Test {
 protected:
  std::unique_ptr<ExecutionLog> Open(ExecutionLogOptions options = {}) {
    options.data_dir = dir_.path();
    auto log = MakeSqliteExecutionLog(options);
    EXPECT_THAT(log.status(), IsOk());
    return std::move(*log);
  }
  testing::TempDir dir_;
};

TEST_F(ExecutionLogTest, LinesComeBackInOrderFilteredAndTailed) {
  auto log = Open();
  log->Append(Line("e1", "Started bar!"));
  log->Append(Line("e2", "other"));
  log->Append(Line("e1", "Completed bar!"));
  log->Append({0, 1000, "projects/p/locations/local/functions/baz", "e3", "stdout", "INFO", "not bar"});
  ASSERT_THAT(log->Flush(), IsOk());

  auto all = log->Logs({.function = kFn});
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_THAT(*all, ElementsAre(Field(&LogEntry::message, "Started bar!"), Field(&LogEntry::message, "other"),
                                Field(&LogEntry::message, "Completed bar!")));

  auto one = log->Logs({.function = kFn, .execution_id = "e1"});
  EXPECT_THAT(*one, ElementsAre(Field(&LogEntry::message, "Started bar!"), Field(&LogEntry::message, "Completed bar!")));

  auto tail = log->Logs({.function = kFn, .limit = 2});
  EXPECT_THAT(*tail, ElementsAre(Field(&LogEntry::message, "other"), Field(&LogEntry::message, "Completed bar!")));

  auto after = log->Logs({.function = kFn, .after_seq = (*all)[1].seq});
  EXPECT_THAT(*after, ElementsAre(Field(&LogEntry::message, "Completed bar!")));
}

TEST_F(ExecutionLogTest, AHeldLineComesAfterLinesAppendedDuringItsHold) {
  auto log = Open();
  log->AppendAfter(Line("e1", "Function execution took 1 ms"), std::chrono::milliseconds(40));
  log->Append(Line("e1", "Completed bar!"));  // the instance's line, read after the answer
  // No flush: the writer's own schedule writes both, the held one once its 40 ms pass.
  auto lines = log->Logs({.function = kFn});
  for (int i = 0; i < 1000 && lines.ok() && lines->size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    lines = log->Logs({.function = kFn});
  }
  ASSERT_THAT(lines.status(), IsOk());
  EXPECT_THAT(*lines, ElementsAre(Field(&LogEntry::message, "Completed bar!"),
                                  Field(&LogEntry::message, "Function execution took 1 ms")));
  // A flush writes held lines at once.
  log->AppendAfter(Line("e2", "held"), std::chrono::seconds(30));
  ASSERT_THAT(log->Flush(), IsOk());
  EXPECT_THAT(*log->Logs({.function = kFn, .execution_id = "e2"}), ElementsAre(Field(&LogEntry::message, "held")));
}

TEST_F(ExecutionLogTest, ExecutionsNewestFirstAndByIdAcrossReopen) {
  {
    auto log = Open();
    log->Record({"e1", kFn, "pubsub", "7", 1, "error", 1000, 5, "boom"});
    log->Record({"e2", kFn, "pubsub", "7", 2, "ok", 2000, 3, ""});
  }  // closing writes what is buffered
  auto log = Open();
  auto rows = log->Executions(kFn, 10);
  ASSERT_THAT(rows.status(), IsOk());
  EXPECT_THAT(*rows, ElementsAre(Field(&ExecutionRow::execution_id, "e2"), Field(&ExecutionRow::execution_id, "e1")));
  auto e1 = log->Execution("e1");
  ASSERT_TRUE(e1.ok() && e1->has_value());
  EXPECT_EQ((*e1)->status, "error");
  EXPECT_EQ((*e1)->error, "boom");
  EXPECT_EQ((*e1)->attempt, 1);
  EXPECT_FALSE(log->Execution("nope")->has_value());
}

TEST_F(ExecutionLogTest, RetentionBoundsAgeAndCount) {
  auto log = Open({.retention_ms = 10'000, .max_log_lines = 3});
  log->Append(Line("e0", "too old", 1'000));
  for (int i = 0; i < 5; ++i) log->Append(Line("e1", "line " + std::to_string(i), 50'000));
  ASSERT_THAT(log->Flush(), IsOk());
  auto deleted = log->ApplyRetention(55'000);
  ASSERT_THAT(deleted.status(), IsOk());
  EXPECT_EQ(*deleted, 3);
  auto left = log->Logs({.function = kFn});
  EXPECT_THAT(*left, ElementsAre(Field(&LogEntry::message, "line 2"), Field(&LogEntry::message, "line 3"),
                                 Field(&LogEntry::message, "line 4")));
}

}  // namespace
}  // namespace ferry
