// A hand-written parser: five small fields, where a library would bring more than it saves.
#include "schedule/cron.h"

#include <array>
#include <cctype>
#include <vector>

#include "common/split.h"

namespace ferry {
namespace {

constexpr std::array<std::string_view, 12> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kWeekdays = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct Field {
  char const* name;
  int min, max;
  std::string_view const* names;  // names[0] stands for `min`
  std::size_t name_count;
};

// A number or a name of the field; -1 when it is neither.
int Value(std::string_view text, Field const& f) {
  if (text.empty()) return -1;
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    int v = 0;
    for (char c : text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || v > 1000) return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  }
  for (std::size_t i = 0; i < f.name_count; ++i) {
    if (text.size() != 3) break;
    bool same = true;
    for (std::size_t k = 0; k < 3; ++k) {
      same = same && std::toupper(static_cast<unsigned char>(text[k])) == f.names[i][k];
    }
    if (same) return f.min + static_cast<int>(i);
  }
  return -1;
}

// Sets the bits of one field; `max_value` is the largest number written (7 for weekdays, folded to 0 later).
template <std::size_t N>
Status ParseField(std::string_view text, Field const& f, int max_value, std::bitset<N>& bits) {
  auto error = [&](std::string const& what) {
    return InvalidArgumentError("invalid cron " + std::string(f.name) + " field \"" + std::string(text) + "\": " + what);
  };
  for (auto item : Split(text, ',')) {
    int step = 1;
    if (auto slash = item.find('/'); slash != std::string_view::npos) {
      step = Value(item.substr(slash + 1), Field{f.name, 1, 1000, nullptr, 0});
      if (step <= 0) return error("a step must be a positive number");
      item = item.substr(0, slash);
    }
    int lo = 0, hi = 0;
    if (item == "*") {
      lo = f.min;
      hi = f.max;
    } else if (auto dash = item.find('-'); dash != std::string_view::npos) {
      lo = Value(item.substr(0, dash), f);
      hi = Value(item.substr(dash + 1), f);
      if (lo < 0 || hi < 0) return error("not a number or name");
    } else {
      lo = Value(item, f);
      if (lo < 0) return error("not a number or name");
      hi = step > 1 ? f.max : lo;  // "5/15": from 5 to the end in steps of 15
    }
    if (lo < f.min || hi > max_value || lo > hi) {
      return error("out of range " + std::to_string(f.min) + "-" + std::to_string(max_value));
    }
    for (int v = lo; v <= hi; v += step) bits.set(static_cast<std::size_t>(v));
  }
  return OkStatus();
}

}  // namespace

StatusOr<CronSchedule> CronSchedule::Parse(std::string_view text) {
  std::string expr(text);
  while (!expr.empty() && std::isspace(static_cast<unsigned char>(expr.back()))) expr.pop_back();
  while (!expr.empty() && std::isspace(static_cast<unsigned char>(expr.front()))) expr.erase(0, 1);
  if (!expr.empty() && expr[0] == '@') {
    if (expr == "@yearly" || expr == "@annually") expr = "0 0 1 1 *";
    else if (expr == "@monthly") expr = "0 0 1 * *";
    else if (expr == "@weekly") expr = "0 0 * * 0";
    else if (expr == "@daily" || expr == "@midnight") expr = "0 0 * * *";
    else if (expr == "@hourly") expr = "0 * * * *";
    else return InvalidArgumentError("unknown cron shorthand \"" + expr + "\"");
  }
  std::vector<std::string_view> fields;
  std::string_view rest = expr;
  while (!rest.empty()) {
    auto start = rest.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    auto end = rest.find_first_of(" \t");
    fields.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  if (fields.size() != 5) {
    return InvalidArgumentError("a cron schedule has 5 fields (minute hour day-of-month month day-of-week), \"" +
                                std::string(text) + "\" has " + std::to_string(fields.size()));
  }
  CronSchedule s;
  Status st = ParseField(fields[0], {"minute", 0, 59, nullptr, 0}, 59, s.minutes_);
  if (st.ok()) st = ParseField(fields[1], {"hour", 0, 23, nullptr, 0}, 23, s.hours_);
  if (st.ok()) st = ParseField(fields[2], {"day-of-month", 1, 31, nullptr, 0}, 31, s.days_);
  if (st.ok()) st = ParseField(fields[3], {"month", 1, 12, kMonths.data(), kMonths.size()}, 12, s.months_);
  std::bitset<8> weekdays;
  if (st.ok()) st = ParseField(fields[4], {"day-of-week", 0, 6, kWeekdays.data(), kWeekdays.size()}, 7, weekdays);
  if (!st.ok()) return st;
  for (std::size_t d = 0; d < 7; ++d) s.weekdays_[d] = weekdays[d];
  if (weekdays[7]) s.weekdays_.set(0);
  s.any_day_ = fields[2][0] == '*';
  s.any_weekday_ = fields[4][0] == '*';
  return s;
}

bool CronSchedule::DayMatches(LocalTime const& t) const {
  bool dom = days_[static_cast<std::size_t>(t.day)];
  bool dow = weekdays_[static_cast<std::size_t>(t.weekday)];
  return any_day_ || any_weekday_ ? dom && dow : dom || dow;
}

int64_t CronSchedule::NextAfter(int64_t after_ms, TimeZone const& zone) const {
  int64_t const after = after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000);
  // Walk local minutes from the one in force at `after`, skipping whole months, days and hours that cannot match.
  int64_t local = after + zone.OffsetAt(after);
  local -= ((local % 60) + 60) % 60;
  int64_t const end = local + 5LL * 366 * 86400;
  while (local <= end) {
    LocalTime t = FromLocalSeconds(local);
    if (!months_[static_cast<std::size_t>(t.month)]) {
      LocalTime next{t.month == 12 ? t.year + 1 : t.year, t.month == 12 ? 1 : t.month + 1, 1, 0, 0, 0};
      local = LocalSeconds(next);
      continue;
    }
    if (!DayMatches(t)) {
      local = LocalSeconds({t.year, t.month, t.day, 0, 0, 0}) + 86400;
      continue;
    }
    if (!hours_[static_cast<std::size_t>(t.hour)]) {
      local = LocalSeconds({t.year, t.month, t.day, t.hour, 0, 0}) + 3600;
      continue;
    }
    if (!minutes_[static_cast<std::size_t>(t.minute)]) {
      local += 60;
      continue;
    }
    // A matching wall-clock minute: the instant it names, once.
    TimeZone::Resolved r = zone.FromLocal(local);
    if (r.first > after) return r.first * 1000;
    local += 60;
  }
  return -1;
}

}  // namespace ferry
