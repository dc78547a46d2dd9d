#include "schedule/time_zone.h"

#include <filesystem>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

namespace ferry {
namespace {

// Days since 1970-01-01 of a civil date, and back (Howard Hinnant's algorithms).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t const era = (y >= 0 ? y : y - 399) / 400;
  int64_t const yoe = y - era * 400;
  int64_t const doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t ReadBig(std::string const& data, std::size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(data[at + static_cast<std::size_t>(i)]);
  if (bytes == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}

}  // namespace

int64_t LocalSeconds(LocalTime const& t) {
  return DaysFromCivil(t.year, t.month, t.day) * 86400 + int64_t{t.hour} * 3600 + int64_t{t.minute} * 60;
}

LocalTime FromLocalSeconds(int64_t local_seconds) {
  int64_t days = FloorDiv(local_seconds, 86400);
  int64_t secs = local_seconds - days * 86400;
  int64_t z = days + 719468;
  int64_t const era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t const doe = z - era * 146097;
  int64_t const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t const mp = (5 * doy + 2) / 153;
  LocalTime t;
  t.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  t.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  t.year = static_cast<int>(yoe + era * 400 + (t.month <= 2));
  t.hour = static_cast<int>(secs / 3600);
  t.minute = static_cast<int>(secs % 3600 / 60);
  t.weekday = static_cast<int>(((days % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  return t;
}

TimeZone TimeZone::Utc() {
  TimeZone zone;
  zone.name_ = "UTC";
  return zone;
}

StatusOr<TimeZone> TimeZone::Load(std::string const& name) {
  if (name.empty() || name == "UTC" || name == "Etc/UTC") return Utc();
  bool valid = name.front() != '/' && name.find("..") == std::string::npos &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+';
               });
  if (!valid) return InvalidArgumentError("invalid time zone name \"" + name + "\"");
  char const* dir = std::getenv("TZDIR");
  std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo") + "/" + name;
  // A directory (America) or anything but a regular file of sane size is no zone.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || std::filesystem::file_size(path, ec) > (1u << 20) || ec) {
    return NotFoundError("unknown time zone \"" + name + "\"");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("unknown time zone \"" + name + "\" (no " + path + ")");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&] { return InvalidArgumentError("time zone file " + path + " is not a TZif file Ferry can read"); };
  if (data.size() < 44 || data.compare(0, 4, "TZif") != 0 || data[4] < '2') return bad();
  // Skip the version 1 block (32-bit times) to the version 2 header.
  // The counts are unsigned 32-bit; each is checked against the file's size before it sizes anything, so the
  // sums below (at most 9 * 2^20 each) cannot overflow and no read goes past the data.
  bool counts_ok = true;
  auto counts = [&](std::size_t at, uint64_t c[6]) {
    for (int i = 0; i < 6; ++i) {
      c[i] = static_cast<uint32_t>(ReadBig(data, at + 20 + static_cast<std::size_t>(i) * 4, 4));
      if (c[i] > data.size()) counts_ok = false;
    }
  };
  uint64_t c[6];  // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  counts(0, c);
  if (!counts_ok) return bad();
  std::size_t at = 44 + static_cast<std::size_t>(c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
  if (data.size() < at + 44 || data.compare(at, 4, "TZif") != 0) return bad();
  counts(at, c);
  if (!counts_ok) return bad();
  at += 44;
  std::size_t const timecnt = static_cast<std::size_t>(c[3]), typecnt = static_cast<std::size_t>(c[4]);
  if (typecnt == 0 || data.size() < at + timecnt * 9 + typecnt * 6) return bad();
  TimeZone zone;
  zone.name_ = name;
  std::vector<int32_t> type_offsets;
  std::size_t types_at = at + timecnt * 9;
  for (std::size_t i = 0; i < typecnt; ++i) type_offsets.push_back(static_cast<int32_t>(ReadBig(data, types_at + i * 6, 4)));
  zone.initial_offset_ = type_offsets[0];
  for (std::size_t i = 0; i < timecnt; ++i) {
    auto type = static_cast<unsigned char>(data[at + timecnt * 8 + i]);
    if (type >= typecnt) return bad();
    zone.transitions_.push_back(ReadBig(data, at + i * 8, 8));
    zone.offsets_.push_back(type_offsets[type]);
  }
  return zone;
}

int32_t TimeZone::OffsetAt(int64_t unix_seconds) const {
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), unix_seconds);
  if (it == transitions_.begin()) return initial_offset_;
  return offsets_[static_cast<std::size_t>(it - transitions_.begin() - 1)];
}

LocalTime TimeZone::ToLocal(int64_t unix_seconds) const {
  return FromLocalSeconds(unix_seconds + OffsetAt(unix_seconds));
}

TimeZone::Resolved TimeZone::FromLocal(int64_t local) const {
  // Offsets never differ by more than a day, so the candidates come from offsets in force within two days.
  constexpr int64_t kWindow = 2 * 86400;
  std::set<int32_t> offsets{OffsetAt(local - kWindow)};
  auto lo = std::lower_bound(transitions_.begin(), transitions_.end(), local - kWindow);
  auto hi = std::upper_bound(transitions_.begin(), transitions_.end(), local + kWindow);
  for (auto it = lo; it != hi; ++it) offsets.insert(offsets_[static_cast<std::size_t>(it - transitions_.begin())]);
  std::vector<int64_t> instants;
  for (int32_t offset : offsets) {
    int64_t u = local - offset;
    if (OffsetAt(u) == offset) instants.push_back(u);
  }
  std::sort(instants.begin(), instants.end());
  instants.erase(std::unique(instants.begin(), instants.end()), instants.end());
  Resolved r;
  if (!instants.empty()) {
    r.count = static_cast<int>(instants.size());
    r.first = instants.front();
    r.second = instants.back();
    return r;
  }
  // In a gap: the clocks jumped over it at the transition where local time before it is at most `local`.
  r.count = 0;
  for (auto it = lo; it != hi; ++it) {
    auto i = static_cast<std::size_t>(it - transitions_.begin());
    int32_t before = i == 0 ? initial_offset_ : offsets_[i - 1];
    if (*it + before <= local && local < *it + offsets_[i]) {
      r.first = r.second = *it;
      return r;
    }
  }
  r.first = r.second = local - OffsetAt(local);  // not reached with a consistent file
  return r;
}

}  // namespace ferry
