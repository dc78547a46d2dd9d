#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/sqlite/sqlite_db.h"

namespace ferry {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

TEST(IdRunsTest, RunsOfFourOrMoreBecomeRangesAndTheRestStaySingle) {
  auto runs = SplitIntoRuns({12, 3, 4, 5, 6, 20, 21, 22, 40, 6, 13, 11, 10, 9});
  EXPECT_THAT(runs.ranges, ElementsAre(Pair(3, 6), Pair(9, 13)));
  EXPECT_THAT(runs.singles, ElementsAre(20, 21, 22, 40));
}

TEST(IdRunsTest, NothingOrOneId) {
  auto none = SplitIntoRuns({});
  EXPECT_THAT(none.ranges, IsEmpty());
  EXPECT_THAT(none.singles, IsEmpty());
  auto one = SplitIntoRuns({7, 7});
  EXPECT_THAT(one.ranges, IsEmpty());
  EXPECT_THAT(one.singles, ElementsAre(7));
}

}  // namespace
}  // namespace ferry
