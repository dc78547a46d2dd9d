#include "store/sqlite/lease_clock.h"

#include <algorithm>
#include <climits>

namespace ferry {

bool LeaseClock::NeedsScan(int64_t sub, int64_t now_ms) const {
  auto it = subs_.find(sub);
  return it == subs_.end() || it->second.rescan_at <= now_ms;
}

void LeaseClock::StartScan(int64_t sub) {
  Forget(sub);
  subs_[sub];
  ++changes_;
}

void LeaseClock::Set(int64_t sub, int64_t msg, int64_t deadline) {
  auto it = subs_.find(sub);
  if (it == subs_.end()) return;  // not scanned yet: the scan will find the row
  auto& leases = it->second;
  auto [entry, added] = leases.deadline_of.try_emplace(msg, deadline);
  if (!added) {
    if (entry->second == deadline) return;
    leases.by_deadline.erase({entry->second, msg});
    entry->second = deadline;
  } else if (size_ >= capacity_) {
    leases.deadline_of.erase(entry);
    leases.rescan_at = std::min(leases.rescan_at, deadline);
    return;
  } else {
    ++size_;
  }
  leases.by_deadline.insert({deadline, msg});
  ++changes_;
}

void LeaseClock::Erase(int64_t sub, int64_t msg) {
  auto it = subs_.find(sub);
  if (it == subs_.end()) return;
  auto& leases = it->second;
  auto entry = leases.deadline_of.find(msg);
  if (entry == leases.deadline_of.end()) return;
  leases.by_deadline.erase({entry->second, msg});
  leases.deadline_of.erase(entry);
  --size_;
  ++changes_;
}

void LeaseClock::Forget(int64_t sub) {
  auto it = subs_.find(sub);
  if (it == subs_.end()) return;
  size_ -= it->second.deadline_of.size();
  subs_.erase(it);
  ++changes_;
}

void LeaseClock::ForgetAll() {
  subs_.clear();
  size_ = 0;
  ++changes_;
}

std::vector<int64_t> LeaseClock::TakeDue(int64_t sub, int64_t now_ms) {
  std::vector<int64_t> due;
  auto it = subs_.find(sub);
  if (it == subs_.end()) return due;
  auto& leases = it->second;
  auto end = leases.by_deadline.upper_bound({now_ms, INT64_MAX});
  for (auto e = leases.by_deadline.begin(); e != end; ++e) {
    due.push_back(e->second);
    leases.deadline_of.erase(e->second);
  }
  leases.by_deadline.erase(leases.by_deadline.begin(), end);
  size_ -= due.size();
  changes_ += due.size();
  return due;
}

}  // namespace ferry
