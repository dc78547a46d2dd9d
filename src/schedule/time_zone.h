#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// A wall-clock time, fields as people write them (month 1-12, weekday 0 = Sunday).
struct LocalTime {
  int year = 1970, month = 1, day = 1, hour = 0, minute = 0, weekday = 4;
};

// Seconds since 1970-01-01 00:00 of a wall-clock time, as if it were UTC ("local seconds"), and back.
int64_t LocalSeconds(LocalTime const& t);
LocalTime FromLocalSeconds(int64_t local_seconds);

// An IANA time zone read from the system's tz database (/usr/share/zoneinfo, or $TZDIR): its UTC offsets and
// the instants they change. Written by hand: libstdc++ 12 has no std::chrono::tzdb, and localtime_r works only
// in the process's one TZ. Reads the version 2 data (64-bit transition times); past its last transition (2037 in
// Debian's files) the last offset holds.
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
  std::vector<int64_t> transitions_;  // unix seconds, ascending
  std::vector<int32_t> offsets_;      // offsets_[i] holds from transitions_[i]; offsets_.back() before the first
  int32_t initial_offset_ = 0;
};

}  // namespace ferry
