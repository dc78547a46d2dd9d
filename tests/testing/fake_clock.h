#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "common/clock.h"

namespace ferry::testing {

// A clock that moves only when told to: both readings move together, and Advance wakes whatever waits on it, so
// a test steps through leases, backoff and ticks without sleeping. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint start = FromUnixMillis(1'800'000'000'000)) : now_ms_(ToUnixMillis(start)) {}
  [[nodiscard]] TimePoint Now() const override { return FromUnixMillis(now_ms_.load()); }
  [[nodiscard]] SteadyPoint SteadyNow() const override {
    return SteadyPoint(std::chrono::milliseconds(now_ms_.load() - start_ms_));
  }

  // Registers the waiter, so Advance can notify it. A notification can slip in between a waiter's look at the
  // time and its wait; the short real wait makes that cost a millisecond, not a hang.
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, SteadyPoint deadline) const override {
    if (SteadyNow() >= deadline) return;
    {
      std::lock_guard guard(waiters_mu_);
      waiters_.push_back(&cv);
    }
    cv.wait_for(lock, std::chrono::milliseconds(1));
    std::lock_guard guard(waiters_mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &cv));
  }
  using Clock::WaitUntil;

  void Advance(std::chrono::milliseconds d) {
    now_ms_ += d.count();
    Notify();
  }
  void Set(TimePoint t) {
    now_ms_ = ToUnixMillis(t);
    Notify();
  }

 private:
  void Notify() {
    std::lock_guard guard(waiters_mu_);
    for (auto* cv : waiters_) cv->notify_all();
  }

  std::atomic<int64_t> now_ms_;
  int64_t const start_ms_ = now_ms_.load();
  mutable std::mutex waiters_mu_;
  mutable std::vector<std::condition_variable*> waiters_;  // GUARDED_BY(waiters_mu_)
};

}  // namespace ferry::testing
