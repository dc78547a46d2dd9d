#pragma once

#include <cstdint>
#include <string>

#include "ferry/status.h"

namespace date {
class time_zone;
}  // namespace date

namespace ferry {

// A wall-clock time, fields as people write them (month 1-12, weekday 0 = Sunday).
struct LocalTime {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, weekday = 4;
};

// Seconds since 1970-01-01 00:00 of a wall-clock time, as if it were UTC ("local seconds"), and back.
int64_t LocalSeconds(LocalTime const& t);
LocalTime FromLocalSeconds(int64_t local_seconds);

// An IANA time zone from the system's tz database (/usr/share/zoneinfo), read by Howard Hinnant's date/tz library
// (Debian's libhowardhinnant-date-dev, the basis of C++20's std::chrono::tzdb, which libstdc++ 12 lacks): its
// UTC offsets and the instants they change. Ferry keeps only the name checks; the TZif parsing is the library's.
class TimeZone {
 public:
  // NOT_FOUND for an unknown zone name, INVALID_ARGUMENT for a malformed file or name.
  static StatusOr<TimeZone> Load(std::string const& name);
  static TimeZone Utc();

  [[nodiscard]] std::string const& name() const { return name_; }
  // The offset from UTC (seconds east) in force at a unix time.
  [[nodiscard]] int32_t OffsetAt(int64_t unix_seconds) const;
  [[nodiscard]] LocalTime ToLocal(int64_t unix_seconds) const;

  // The instants a wall-clock time names: one, two (clocks went back: `first` is the earlier) or none (clocks
  // went forward past it: `first` is then the instant of that jump).
  struct Resolved {
    int count = 1;
    int64_t first = 0;
    int64_t second = 0;
  };
  [[nodiscard]] Resolved FromLocal(int64_t local_seconds) const;

 private:
  std::string name_;
  date::time_zone const* zone_ = nullptr;  // the library's, alive for the process; null for UTC
};

}  // namespace ferry
