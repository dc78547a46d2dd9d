#include "schedule/time_zone.h"

#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <exception>

namespace ferry {
namespace {

date::sys_seconds Sys(int64_t unix_seconds) { return date::sys_seconds{std::chrono::seconds{unix_seconds}}; }

}  // namespace

int64_t LocalSeconds(LocalTime const& t) {
  auto days = date::local_days{date::year{t.year} / t.month / t.day};
  return int64_t{days.time_since_epoch().count()} * 86400 + int64_t{t.hour} * 3600 + int64_t{t.minute} * 60;
}

LocalTime FromLocalSeconds(int64_t local_seconds) {
  auto const tp = date::local_seconds{std::chrono::seconds{local_seconds}};
  auto const days = date::floor<date::days>(tp);
  date::year_month_day const ymd{days};
  date::hh_mm_ss const hms{tp - days};
  LocalTime t;
  t.year = static_cast<int>(ymd.year());
  t.month = static_cast<int>(static_cast<unsigned>(ymd.month()));
  t.day = static_cast<int>(static_cast<unsigned>(ymd.day()));
  t.hour = static_cast<int>(hms.hours().count());
  t.minute = static_cast<int>(hms.minutes().count());
  t.weekday = static_cast<int>(date::weekday{days}.c_encoding());
  return t;
}

TimeZone TimeZone::Utc() {
  TimeZone zone;
  zone.name_ = "UTC";
  return zone;
}

StatusOr<TimeZone> TimeZone::Load(std::string const& name) {
  if (name.empty() || name == "UTC" || name == "Etc/UTC") return Utc();
  // The name becomes a path under the zoneinfo directory inside the library: only names shaped like IANA's.
  bool valid = name.size() <= 64 && name.front() != '/' && name.find("..") == std::string::npos &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+';
               });
  if (!valid) return InvalidArgumentError("invalid time zone name \"" + name + "\"");
  TimeZone zone;
  zone.name_ = name;
  try {
    zone.zone_ = date::locate_zone(name);  // throws std::runtime_error for a name the database lacks
    (void)zone.zone_->get_info(Sys(0));    // loads the zone's file now, so a bad file fails here, not later
  } catch (std::exception const&) {
    return NotFoundError("unknown time zone \"" + name + "\"");
  }
  return zone;
}

int32_t TimeZone::OffsetAt(int64_t unix_seconds) const {
  if (zone_ == nullptr) return 0;
  return static_cast<int32_t>(zone_->get_info(Sys(unix_seconds)).offset.count());
}

LocalTime TimeZone::ToLocal(int64_t unix_seconds) const {
  return FromLocalSeconds(unix_seconds + OffsetAt(unix_seconds));
}

TimeZone::Resolved TimeZone::FromLocal(int64_t local) const {
  Resolved r;
  if (zone_ == nullptr) {
    r.first = r.second = local;
    return r;
  }
  auto const info = zone_->get_info(date::local_seconds{std::chrono::seconds{local}});
  auto const before = local - info.first.offset.count();
  switch (info.result) {
    case date::local_info::unique:
      r.first = r.second = before;
      break;
    case date::local_info::ambiguous:
      r.count = 2;
      r.first = before;
      r.second = local - info.second.offset.count();
      break;
    case date::local_info::nonexistent:
      r.count = 0;  // the clocks jumped over it, at the end of the first period
      r.first = r.second = info.first.end.time_since_epoch().count();
      break;
  }
  return r;
}

}  // namespace ferry
