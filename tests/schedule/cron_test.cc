#include "schedule/cron.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/time_util.h"
#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;

int64_t Ms(std::string_view rfc3339) { return *ParseRfc3339(rfc3339); }
std::string Utc(int64_t ms) { return ms < 0 ? "never" : FormatRfc3339(ms); }

// The fire times after `from`, in RFC 3339 UTC.
std::vector<std::string> Fires(std::string_view cron, std::string const& zone_name, std::string_view from, int n) {
  auto cron_schedule = CronSchedule::Parse(cron);
  EXPECT_THAT(cron_schedule, IsOk()) << cron;
  auto zone = TimeZone::Load(zone_name);
  EXPECT_THAT(zone, IsOk()) << zone_name;
  std::vector<std::string> out;
  int64_t at = Ms(from);
  for (int i = 0; i < n && cron_schedule.ok() && zone.ok(); ++i) {
    at = cron_schedule->NextAfter(at, *zone);
    out.push_back(Utc(at));
    if (at < 0) break;
  }
  return out;
}

using ::testing::ElementsAre;

TEST(CronTest, FieldsListsRangesStepsAndNames) {
  EXPECT_THAT(Fires("*/15 9-17 * * MON-FRI", "UTC", "2026-11-27T17:50:00Z", 2),  // a Friday
              ElementsAre("2026-11-30T09:00:00.000Z", "2026-11-30T09:15:00.000Z"));
  EXPECT_THAT(Fires("0 0 1 jan,JUL *", "UTC", "2026-02-01T00:00:00Z", 2),
              ElementsAre("2026-07-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"));
  EXPECT_THAT(Fires("5/20 * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
              ElementsAre("2026-01-01T00:05:00.000Z", "2026-01-01T00:25:00.000Z", "2026-01-01T00:45:00.000Z"));
  EXPECT_THAT(Fires("0 12 * * 7", "UTC", "2026-11-28T00:00:00Z", 1), ElementsAre("2026-11-29T12:00:00.000Z"));
}

TEST(CronTest, DayOfMonthOrDayOfWeekWhenBothAreRestricted) {
  // The 13th or any Friday, as Vixie cron: 2026-11-13 is itself a Friday; then Fridays 20 and 27.
  EXPECT_THAT(Fires("0 0 13 * FRI", "UTC", "2026-11-12T00:00:00Z", 3),
              ElementsAre("2026-11-13T00:00:00.000Z", "2026-11-20T00:00:00.000Z", "2026-11-27T00:00:00.000Z"));
  // With one of them "*", both must match: Fridays that are the 13th.
  EXPECT_THAT(Fires("0 0 13 * *", "UTC", "2026-11-14T00:00:00Z", 1), ElementsAre("2026-12-13T00:00:00.000Z"));
}

TEST(CronTest, Shorthands) {
  EXPECT_THAT(Fires("@hourly", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("2026-11-28T11:00:00.000Z"));
  EXPECT_THAT(Fires("@daily", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("2026-11-29T00:00:00.000Z"));
  EXPECT_THAT(Fires("@weekly", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("2026-11-29T00:00:00.000Z"));
  EXPECT_THAT(Fires("@monthly", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("2026-12-01T00:00:00.000Z"));
  EXPECT_THAT(Fires("@yearly", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("2027-01-01T00:00:00.000Z"));
  EXPECT_THAT(Fires("0 0 30 2 *", "UTC", "2026-11-28T10:20:00Z", 1), ElementsAre("never"));
}

TEST(CronTest, BadExpressionsNameTheField) {
  for (char const* bad : {"60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "* * *", "@often",
                          "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * * * *", "1- * * * *"}) {
    EXPECT_THAT(CronSchedule::Parse(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(CronTest, TimeZonesAndUnknownZones) {
  EXPECT_THAT(Fires("0 3 * * *", "America/Denver", "2026-11-28T00:00:00Z", 1),
              ElementsAre("2026-11-28T10:00:00.000Z"));  // 03:00 MST
  EXPECT_THAT(TimeZone::Load("Mars/Olympus_Mons"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(TimeZone::Load("../etc/passwd"), StatusIs(StatusCode::kInvalidArgument));
}

// Daylight saving: a wall-clock time skipped by the jump fires once at the jump; one that occurs twice fires once,
// at its first occurrence.
TEST(CronTest, DenverSkippedAndRepeatedHours) {
  // 2026-03-08 02:00 MST jumps to 03:00 MDT (09:00 UTC): 02:30 does not exist that day.
  EXPECT_THAT(Fires("30 2 * * *", "America/Denver", "2026-03-07T19:00:00Z", 2),
              ElementsAre("2026-03-08T09:00:00.000Z", "2026-03-09T08:30:00.000Z"));
  // Every minute of the skipped hour: the sixty of them fire once, at the jump; the next is a day later.
  EXPECT_THAT(Fires("* 2 * * *", "America/Denver", "2026-03-08T08:58:00Z", 2),
              ElementsAre("2026-03-08T09:00:00.000Z", "2026-03-09T08:00:00.000Z"));
  // 2026-11-01 02:00 MDT falls back to 01:00 MST: 01:30 happens twice and fires once.
  EXPECT_THAT(Fires("30 1 * * *", "America/Denver", "2026-10-31T18:00:00Z", 2),
              ElementsAre("2026-11-01T07:30:00.000Z", "2026-11-02T08:30:00.000Z"));
}

TEST(CronTest, LondonSkippedAndRepeatedHours) {
  // 2026-03-29 01:00 GMT jumps to 02:00 BST.
  EXPECT_THAT(Fires("30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 2),
              ElementsAre("2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"));
  // 2026-10-25 02:00 BST falls back to 01:00 GMT.
  EXPECT_THAT(Fires("30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 2),
              ElementsAre("2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"));
}

// Found by the cron fuzz target: local days after 2038 overflowed an int when turned into seconds.
TEST(CronTest, FireTimesPast2038) {
  EXPECT_THAT(Fires("0 0 1 1 *", "Europe/London", "2040-06-01T00:00:00Z", 2),
              ElementsAre("2041-01-01T00:00:00.000Z", "2042-01-01T00:00:00.000Z"));
  // The input it found: day 1 or 30 of February that is a Tuesday ("*/29" counts as "*" for Vixie's rule).
  EXPECT_THAT(Fires("2 5 */29 2 2", "Europe/London", "2038-01-01T00:00:00Z", 1),
              ElementsAre("2039-02-01T05:02:00.000Z"));
}

TEST(CronTest, LordHoweHalfHourShift) {
  // 2026-04-05 02:00 (+11) falls back half an hour to 01:30 (+10:30): 01:45 happens twice.
  EXPECT_THAT(Fires("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", 2),
              ElementsAre("2026-04-04T14:45:00.000Z", "2026-04-05T15:15:00.000Z"));
  // 2026-10-04 02:00 (+10:30) jumps to 02:30 (+11): 02:15 does not exist and fires at the jump.
  EXPECT_THAT(Fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", 2),
              ElementsAre("2026-10-03T15:30:00.000Z", "2026-10-04T15:15:00.000Z"));
}

}  // namespace
}  // namespace ferry
