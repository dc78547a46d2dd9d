#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"
#include "schedule/time_zone.h"

namespace ferry {

// A Unix cron expression: five fields (minute, hour, day of month, month, day of week) with lists, ranges, steps
// ("*/15", "1-5", "MON-FRI", "JAN,JUL") and names, or one of @yearly @annually @monthly @weekly @daily
// @midnight @hourly. As in Vixie cron, when both day fields are restricted a day matches either; 7 is Sunday too.
class CronSchedule {
 public:
  // INVALID_ARGUMENT naming the field that is wrong.
  static StatusOr<CronSchedule> Parse(std::string_view text);

  // The first fire time strictly after `after_ms` (unix ms), in `zone`: the first matching local minute, turned
  // into an instant. A local time that occurs twice (clocks go back) fires at its first occurrence only; one that
  // does not occur (clocks go forward) fires at the instant of the jump. -1 when nothing matches in 5 years
  // ("0 0 30 2 *").
  [[nodiscard]] int64_t NextAfter(int64_t after_ms, TimeZone const& zone) const;

 private:
  // Whether the day fields allow this date.
  [[nodiscard]] bool DayMatches(LocalTime const& t) const;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;      // 1..31
  std::bitset<13> months_;    // 1..12
  std::bitset<7> weekdays_;   // 0 = Sunday
  bool any_day_ = false;      // day of month was "*"
  bool any_weekday_ = false;  // day of week was "*"
};

}  // namespace ferry
