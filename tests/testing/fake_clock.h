#pragma once

#include <atomic>
#include <chrono>

#include "common/clock.h"

namespace ferry::testing {

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint start = FromUnixMillis(1'800'000'000'000)) : now_ms_(ToUnixMillis(start)) {}
  [[nodiscard]] TimePoint Now() const override { return FromUnixMillis(now_ms_.load()); }
  void Advance(std::chrono::milliseconds d) { now_ms_ += d.count(); }
  void Set(TimePoint t) { now_ms_ = ToUnixMillis(t); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace ferry::testing
