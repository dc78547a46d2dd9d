#include "common/time_util.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>

namespace ferry {
namespace {

bool ParseUint(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && out >= 0;
}

// Milliseconds from a fraction's digits ("5" -> 500, "381" -> 381, "123456" -> 123).
int64_t FractionMillis(std::string_view digits) {
  int64_t ms = 0;
  for (int i = 0; i < 3; ++i) ms = ms * 10 + (i < static_cast<int>(digits.size()) ? digits[i] - '0' : 0);
  return ms;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

StatusOr<int64_t> ParseProtoDuration(std::string_view text) {
  auto bad = [&] { return InvalidArgumentError("invalid duration \"" + std::string(text) + "\""); };
  if (text.size() < 2 || text.back() != 's') return bad();
  std::string_view body = text.substr(0, text.size() - 1);
  std::string_view whole = body;
  std::string_view frac;
  if (auto dot = body.find('.'); dot != std::string_view::npos) {
    whole = body.substr(0, dot);
    frac = body.substr(dot + 1);
    if (frac.empty() || frac.size() > 9 || !AllDigits(frac)) return bad();
  }
  int64_t seconds = 0;
  if (!ParseUint(whole, seconds) || seconds > 315576000000) return bad();
  return seconds * 1000 + FractionMillis(frac);
}

std::string FormatProtoDuration(int64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000) + "s";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%03llds", static_cast<long long>(millis / 1000),
                static_cast<long long>(millis % 1000));
  return buf;
}

StatusOr<int64_t> ParseHumanDuration(std::string_view text) {
  auto bad = [&] { return InvalidArgumentError("invalid duration \"" + std::string(text) + "\""); };
  if (text.empty()) return bad();
  // Checked: no unit times any count may pass about 10,000 years, so a huge number is an error, not a wrap.
  constexpr int64_t kMaxMillis = 315576000000LL * 1000;
  int64_t n = 0;
  if (ParseUint(text, n)) return n <= kMaxMillis / 1000 ? StatusOr<int64_t>(n * 1000) : bad();
  int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || j == text.size() || !ParseUint(text.substr(i, j - i), n)) return bad();
    int64_t unit = 0;
    switch (std::tolower(static_cast<unsigned char>(text[j]))) {
      case 's': unit = 1000; break;
      case 'm': unit = 60'000; break;
      case 'h': unit = 3'600'000; break;
      case 'd': unit = 86'400'000; break;
      default: return bad();
    }
    if (n > kMaxMillis / unit || total > kMaxMillis - n * unit) return bad();
    total += n * unit;
    i = j + 1;
  }
  return total;
}

std::string FormatRfc3339(int64_t unix_millis) {
  int64_t secs = unix_millis >= 0 ? unix_millis / 1000 : (unix_millis - 999) / 1000;
  auto ms = static_cast<int>(unix_millis - secs * 1000);
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

StatusOr<int64_t> ParseRfc3339(std::string_view text) {
  auto bad = [&] { return InvalidArgumentError("invalid timestamp \"" + std::string(text) + "\""); };
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
      text[13] != ':' || text[16] != ':') {
    return bad();
  }
  int64_t year, mon, day, hour, min, sec;
  if (!ParseUint(text.substr(0, 4), year) || !ParseUint(text.substr(5, 2), mon) ||
      !ParseUint(text.substr(8, 2), day) || !ParseUint(text.substr(11, 2), hour) ||
      !ParseUint(text.substr(14, 2), min) || !ParseUint(text.substr(17, 2), sec)) {
    return bad();
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return bad();
  std::size_t i = 19;
  int64_t ms = 0;
  if (text[i] == '.') {
    std::size_t j = ++i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i) return bad();
    ms = FractionMillis(text.substr(i, j - i));
    i = j;
  }
  int64_t offset_minutes = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z') && i + 1 == text.size()) {
    offset_minutes = 0;
  } else if (i + 6 == text.size() && (text[i] == '+' || text[i] == '-') && text[i + 3] == ':') {
    int64_t oh, om;
    if (!ParseUint(text.substr(i + 1, 2), oh) || !ParseUint(text.substr(i + 4, 2), om)) return bad();
    offset_minutes = (oh * 60 + om) * (text[i] == '-' ? -1 : 1);
  } else {
    return bad();
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(year - 1900);
  tm.tm_mon = static_cast<int>(mon - 1);
  tm.tm_mday = static_cast<int>(day);
  tm.tm_hour = static_cast<int>(hour);
  tm.tm_min = static_cast<int>(min);
  tm.tm_sec = static_cast<int>(sec);
  int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset_minutes * 60;
  return secs * 1000 + ms;
}

}  // namespace ferry
