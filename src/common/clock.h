#pragma once

#include <chrono>

namespace ferry {

using TimePoint = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

// Wall-clock time, injected so tests can drive deadlines and backoff with a fake. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint Now() const = 0;
};

class SystemClock : public Clock {
 public:
  [[nodiscard]] TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

// Milliseconds since the Unix epoch: the store's time unit.
inline int64_t ToUnixMillis(TimePoint t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}
inline TimePoint FromUnixMillis(int64_t ms) { return TimePoint(Millis(ms)); }

}  // namespace ferry
