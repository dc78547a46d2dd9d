// The scheduler on a real SQLite store with a fake clock: each tick fires once, across restarts; missed ticks
// within the catch-up window fire once on start; pause and resume.
#include "control/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "testing/fake_clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;

constexpr char kTopic[] = "projects/p/topics/ticks";
constexpr char kSub[] = "projects/p/subscriptions/ticks-sub";
constexpr char kName[] = "projects/p/locations/local/jobs/every-5";

int64_t Ms(std::string_view rfc3339) { return *ParseRfc3339(rfc3339); }

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
    ASSERT_THAT(store_->CreateSubscription({.name = kSub, .topic = kTopic}), IsOk());
  }

  void Open() {
    scheduler_.reset();
    store_.reset();
    auto store = MakeSqliteStore({.data_dir = dir_.path(), .sync = false});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    scheduler_ = std::make_unique<Scheduler>(*store_, clock_, [](std::string const&, std::string const&) {
      return true;
    });
  }

  void Deploy(int64_t catch_up_ms = 3'600'000) {
    ScheduleSpec spec{.project = "p", .name = "every-5", .schedule = "*/5 * * * *", .time_zone = "UTC",
                      .topic = kTopic, .data = "tick"};
    spec.catch_up_ms = catch_up_ms;
    ASSERT_THAT(NormalizeScheduleSpec(spec), IsOk());
    Deployment d;
    d.put_schedules.push_back({kName, ScheduleSpecToJson(spec).dump(),
                               Scheduler::NextFire(spec, ToUnixMillis(clock_.Now()))});
    ASSERT_THAT(store_->ApplyDeployment(d), IsOk());
  }

  // Messages waiting on the subscription, acknowledged as they are counted.
  int Drain() {
    auto lease = store_->Lease(kSub, 1000, ToUnixMillis(clock_.Now()));
    EXPECT_THAT(lease, IsOk());
    std::vector<std::string> ids;
    for (auto const& r : lease->messages) ids.push_back(r.ack_id);
    if (!ids.empty()) {
      EXPECT_THAT(store_->Acknowledge(kSub, ids, ToUnixMillis(clock_.Now())), IsOk());
    }
    return static_cast<int>(ids.size());
  }

  void At(std::string_view rfc3339) { clock_.Set(FromUnixMillis(Ms(rfc3339))); }

  ferry::testing::TempDir dir_;
  ferry::testing::FakeClock clock_{FromUnixMillis(Ms("2026-11-28T10:01:00Z"))};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, EachTickFiresOnceAndOnTime) {
  Deploy();
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);  // 10:05 has not come
  At("2026-11-28T10:05:00Z");
  scheduler_->RunDue();
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 1);
  auto state = scheduler_->Get(kName);
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ(state->last_fired_ms, Ms("2026-11-28T10:05:00Z"));
  EXPECT_EQ(state->next_fire_ms, Ms("2026-11-28T10:10:00Z"));
}

TEST_F(SchedulerTest, RestartNeitherRepeatsNorLosesATick) {
  Deploy();
  At("2026-11-28T10:05:00.200Z");
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 1);
  Open();  // a restart at once: 10:05 must not fire again
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);
  // Down from 10:06 to 10:22: 10:10, 10:15 and 10:20 fell meanwhile; the latest fires once on start.
  Open();
  At("2026-11-28T10:22:00Z");
  scheduler_->RunDue();
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 1);
  EXPECT_EQ(scheduler_->Get(kName)->last_fired_ms, Ms("2026-11-28T10:20:00Z"));
  EXPECT_EQ(scheduler_->Get(kName)->next_fire_ms, Ms("2026-11-28T10:25:00Z"));
}

TEST_F(SchedulerTest, TicksOlderThanTheCatchUpWindowAreSkipped) {
  Deploy(/*catch_up_ms=*/0);
  At("2026-11-28T12:03:00Z");  // 10:05 .. 12:00 all missed, the latest 3 minutes ago
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);
  EXPECT_EQ(scheduler_->Get(kName)->next_fire_ms, Ms("2026-11-28T12:05:00Z"));
  At("2026-11-28T12:05:00Z");
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 1);
}

TEST_F(SchedulerTest, ATickFiredElsewhereIsNeitherRepeatedNorWaitedOn) {
  Deploy();
  At("2026-11-28T10:05:00Z");
  // Another node fired 10:05 (and, say, its clock was behind: it left the next tick at 10:05).
  auto fired = store_->FireSchedule(kName, Ms("2026-11-28T10:05:00Z"), Ms("2026-11-28T10:05:00Z"), "", nullptr,
                                    Ms("2026-11-28T10:05:00Z"));
  ASSERT_THAT(fired, IsOk());
  ASSERT_TRUE(*fired);
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);
  EXPECT_EQ(scheduler_->Get(kName)->next_fire_ms, Ms("2026-11-28T10:10:00Z"));
}

TEST_F(SchedulerTest, PauseResumeAndRunNow) {
  Deploy();
  ASSERT_THAT(scheduler_->Pause(kName), IsOk());
  At("2026-11-28T10:05:00Z");
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);
  ASSERT_THAT(scheduler_->RunNow(kName), IsOk());  // a manual run fires even while paused
  EXPECT_EQ(Drain(), 1);
  At("2026-11-28T10:07:00Z");
  ASSERT_THAT(scheduler_->Resume(kName), IsOk());  // 10:05 fell while paused: not made up
  scheduler_->RunDue();
  EXPECT_EQ(Drain(), 0);
  EXPECT_EQ(scheduler_->Get(kName)->next_fire_ms, Ms("2026-11-28T10:10:00Z"));
}

// Waits (in real time, briefly) until `done()` holds: the scheduler's loop runs on its own thread.
template <typename Done>
bool Eventually(Done done) {
  for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return done();
}

TEST_F(SchedulerTest, TheRunningLoopFiresEveryTickOnceAsTheClockPassesIt) {
  Deploy();
  scheduler_->Start();
  // An hour of ticks in well under a second: the loop waits on the clock, which wakes it when it moves.
  int fired = 0;
  for (int step = 1; step <= 12; ++step) {
    clock_.Advance(std::chrono::minutes(5));
    ASSERT_TRUE(Eventually([&] { return (fired += Drain()) == step; })) << "tick " << step << " did not fire";
  }
  clock_.Advance(std::chrono::minutes(3));  // 11:04, short of the next tick
  EXPECT_EQ(scheduler_->Get(kName)->next_fire_ms, Ms("2026-11-28T11:05:00Z"));
  EXPECT_EQ(Drain(), 0);
  scheduler_->Stop();
  EXPECT_EQ(fired, 12);
}

TEST_F(SchedulerTest, AFailingFunctionTargetIsRetriedWithBackoffOnTheClock) {
  std::mutex mu;
  std::vector<int64_t> attempts;  // the clock's time at each attempt
  scheduler_ = std::make_unique<Scheduler>(*store_, clock_, [&](std::string const&, std::string const&) {
    std::lock_guard lock(mu);
    attempts.push_back(ToUnixMillis(clock_.Now()));
    return false;
  });
  ScheduleSpec spec{.project = "p", .name = "fn-every-5", .schedule = "*/5 * * * *", .time_zone = "UTC",
                    .data = "tick", .function = "fn"};
  spec.retry_count = 2;
  spec.min_backoff_ms = 10'000;
  ASSERT_THAT(NormalizeScheduleSpec(spec), IsOk());
  Deployment d;
  d.put_schedules.push_back({"projects/p/locations/local/jobs/fn-every-5", ScheduleSpecToJson(spec).dump(),
                             Scheduler::NextFire(spec, ToUnixMillis(clock_.Now()))});
  ASSERT_THAT(store_->ApplyDeployment(d), IsOk());
  scheduler_->Start();
  auto count = [&] {
    std::lock_guard lock(mu);
    return attempts.size();
  };
  At("2026-11-28T10:05:00Z");
  ASSERT_TRUE(Eventually([&] { return count() == 1; }));
  // An attempt before its backoff passed would be stamped 10:05:09.999 below.
  clock_.Advance(std::chrono::milliseconds(9'999));
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(Eventually([&] { return count() == 2; }));
  clock_.Advance(std::chrono::seconds(20));  // doubled
  ASSERT_TRUE(Eventually([&] { return count() == 3; }));
  clock_.Advance(std::chrono::seconds(40));  // no fourth attempt: retry_count is 2
  scheduler_->Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(attempts, (std::vector<int64_t>{Ms("2026-11-28T10:05:00Z"), Ms("2026-11-28T10:05:10Z"),
                                            Ms("2026-11-28T10:05:30Z")}));
}

}  // namespace
}  // namespace ferry
