#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// protobuf Duration in its JSON form: "604800s", "1.5s". Returns milliseconds.
StatusOr<int64_t> ParseProtoDuration(std::string_view text);
// Milliseconds as a JSON Duration: whole seconds as "120s", otherwise "1.500s".
std::string FormatProtoDuration(int64_t millis);

// A human duration as gcloud accepts it: "90", "90s", "2m", "1h", "1d", "1h30m". Bare numbers are seconds.
StatusOr<int64_t> ParseHumanDuration(std::string_view text);

// RFC 3339 in UTC with milliseconds: "2026-11-28T02:46:47.381Z".
std::string FormatRfc3339(int64_t unix_millis);
// RFC 3339 with any fraction and a "Z" or "+hh:mm" offset.
StatusOr<int64_t> ParseRfc3339(std::string_view text);

}  // namespace ferry
