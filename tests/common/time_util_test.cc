#include "common/time_util.h"

#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;

TEST(TimeUtilTest, ParsesProtoDurations) {
  EXPECT_EQ(*ParseProtoDuration("604800s"), 604800000);
  EXPECT_EQ(*ParseProtoDuration("1.5s"), 1500);
  EXPECT_EQ(*ParseProtoDuration("0.000000001s"), 0);
  EXPECT_THAT(ParseProtoDuration("10"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseProtoDuration("-1s"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseProtoDuration("1.s"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(TimeUtilTest, FormatsProtoDurations) {
  EXPECT_EQ(FormatProtoDuration(120000), "120s");
  EXPECT_EQ(FormatProtoDuration(1500), "1.500s");
}

TEST(TimeUtilTest, ParsesHumanDurationsAsGcloudDoes) {
  EXPECT_EQ(*ParseHumanDuration("2m"), 120000);
  EXPECT_EQ(*ParseHumanDuration("90"), 90000);
  EXPECT_EQ(*ParseHumanDuration("1h30m"), 5400000);
  EXPECT_EQ(*ParseHumanDuration("7d"), 604800000);
  EXPECT_THAT(ParseHumanDuration("2x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHumanDuration("m"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(TimeUtilTest, RoundTripsRfc3339) {
  EXPECT_EQ(FormatRfc3339(1795840007381), "2026-11-28T04:26:47.381Z");
  EXPECT_EQ(*ParseRfc3339("2026-11-28T04:26:47.381Z"), 1795840007381);
  EXPECT_EQ(*ParseRfc3339("2020-01-01T00:00:00.000000Z"), 1577836800000);
  EXPECT_EQ(*ParseRfc3339("2020-01-01T01:00:00+01:00"), 1577836800000);
  EXPECT_THAT(ParseRfc3339("2020-01-01 00:00:00"), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry
