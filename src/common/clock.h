#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace ferry {

using TimePoint = std::chrono::system_clock::time_point;
using SteadyPoint = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

// Time as Ferry reads it, injected so tests can drive deadlines, leases, backoff and schedules with a fake
// instead of sleeping. Two readings, as the standard library has them: the wall clock, for what is stored and
// shown (publish times, ticks of a schedule), and a monotonic clock, for how long something lasts or waits
// (leases, timeouts). Every wait on a deadline goes through WaitUntil, so a fake clock that jumps wakes it.
// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint Now() const = 0;
  [[nodiscard]] virtual SteadyPoint SteadyNow() const = 0;

  // Waits on `cv`, whose mutex `lock` holds, until it is notified or this clock reaches `deadline`. As
  // condition_variable::wait_until it may return early, so callers look at their condition again.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         SteadyPoint deadline) const = 0;

  // Waits until `done()` holds or this clock reaches `deadline`; returns done().
  template <typename Done>
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SteadyPoint deadline, Done done) const {
    while (!done()) {
      if (SteadyNow() >= deadline) return done();
      WaitUntil(cv, lock, deadline);
    }
    return true;
  }
  template <typename Done>
  bool WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, std::chrono::nanoseconds wait,
               Done done) const {
    return WaitUntil(cv, lock, SteadyNow() + std::chrono::duration_cast<SteadyPoint::duration>(wait), done);
  }
};

class SystemClock : public Clock {
 public:
  [[nodiscard]] TimePoint Now() const override { return std::chrono::system_clock::now(); }
  [[nodiscard]] SteadyPoint SteadyNow() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SteadyPoint deadline) const override {
    cv.wait_until(lock, deadline);
  }
  using Clock::WaitUntil;
};

// Milliseconds since the Unix epoch: the store's time unit.
inline int64_t ToUnixMillis(TimePoint t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}
inline TimePoint FromUnixMillis(int64_t ms) { return TimePoint(Millis(ms)); }

}  // namespace ferry
