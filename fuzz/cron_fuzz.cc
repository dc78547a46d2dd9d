// Cron expressions and time zone names, as a schedule gives them: "ZONE\nEXPRESSION". Any text parses or is
// refused, never a crash; what parses gives fire times that only go forward, in UTC and in the named zone.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "schedule/cron.h"
#include "schedule/time_zone.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  std::string_view zone_name, expression = text;
  if (auto nl = text.find('\n'); nl != std::string_view::npos) {
    zone_name = text.substr(0, nl);
    expression = text.substr(nl + 1);
  }
  auto cron = ferry::CronSchedule::Parse(expression);
  auto zone = ferry::TimeZone::Load(std::string(zone_name));
  if (!cron.ok() || !zone.ok()) return 0;
  int64_t t = 1'700'000'000'000;  // 2023-11-14
  for (int i = 0; i < 3; ++i) {
    int64_t next = cron->NextAfter(t, *zone);
    if (next == -1) break;
    if (next <= t) std::abort();
    t = next;
  }
  (void)cron->NextAfter(t, ferry::TimeZone::Utc());
  return 0;
}
