#include "store/sqlite/lease_clock.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(LeaseClockTest, ASubscriptionIsScannedBeforeItIsTrusted) {
  LeaseClock clock(10);
  EXPECT_TRUE(clock.NeedsScan(1, 0));
  clock.Set(1, 7, 100);  // not scanned yet: the scan will find it
  EXPECT_EQ(clock.size(), 0u);
  clock.StartScan(1);
  EXPECT_FALSE(clock.NeedsScan(1, 1'000'000));
  EXPECT_TRUE(clock.NeedsScan(2, 0));
}

TEST(LeaseClockTest, DueLeasesComeOutEarliestFirstAndOnce) {
  LeaseClock clock(10);
  clock.StartScan(1);
  clock.Set(1, 10, 300);
  clock.Set(1, 11, 100);
  clock.Set(1, 12, 200);
  clock.Set(1, 13, 500);
  clock.Set(1, 12, 400);  // moved later
  EXPECT_THAT(clock.TakeDue(1, 99), IsEmpty());
  EXPECT_THAT(clock.TakeDue(1, 300), ElementsAre(11, 10));
  EXPECT_THAT(clock.TakeDue(1, 300), IsEmpty());
  clock.Erase(1, 13);
  EXPECT_THAT(clock.TakeDue(1, 1000), ElementsAre(12));
  EXPECT_EQ(clock.size(), 0u);
}

TEST(LeaseClockTest, PastItsCapacityASubscriptionIsScannedAgainWhenWhatDidNotFitIsDue) {
  LeaseClock clock(2);
  clock.StartScan(1);
  clock.Set(1, 1, 100);
  clock.Set(1, 2, 200);
  clock.Set(1, 3, 150);  // does not fit
  clock.Set(1, 1, 120);  // a move still does
  EXPECT_EQ(clock.size(), 2u);
  EXPECT_FALSE(clock.NeedsScan(1, 149));
  EXPECT_TRUE(clock.NeedsScan(1, 150));
  clock.StartScan(1);
  EXPECT_EQ(clock.size(), 0u);
  EXPECT_FALSE(clock.NeedsScan(1, 1000));
}

// A rolled-back store change must be able to tell whether it touched the clock.
TEST(LeaseClockTest, EveryChangeCounts) {
  LeaseClock clock(10);
  auto before = clock.changes();
  clock.Set(1, 1, 100);  // not scanned: ignored
  EXPECT_EQ(clock.changes(), before);
  clock.StartScan(1);  // even for a subscription the clock did not know
  EXPECT_GT(clock.changes(), before);
  clock.Set(1, 1, 100);
  clock.Set(1, 2, 100);
  before = clock.changes();
  clock.Set(1, 1, 100);  // the same deadline
  clock.Erase(1, 9);     // not there
  EXPECT_EQ(clock.changes(), before);
  for (auto change : std::vector<std::function<void()>>{[&] { clock.Set(1, 1, 150); },
                                                        [&] { clock.Erase(1, 1); },
                                                        [&] { (void)clock.TakeDue(1, 100); },
                                                        [&] { clock.Forget(1); },
                                                        [&] { clock.ForgetAll(); }}) {
    before = clock.changes();
    change();
    EXPECT_GT(clock.changes(), before);
  }
  EXPECT_EQ(clock.size(), 0u);
  EXPECT_TRUE(clock.NeedsScan(1, 0));
}

}  // namespace
}  // namespace ferry
