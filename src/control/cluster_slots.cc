#include "control/cluster_slots.h"

#include <pthread.h>

#include <cstdio>
#include <vector>

#include "common/time_util.h"

namespace ferry {

ClusterSlots::ClusterSlots(ClaimStore& store, Clock& clock, std::string node)
    : store_(store), clock_(clock), node_(std::move(node)), renewer_([this] { RenewLoop(); }) {}

ClusterSlots::~ClusterSlots() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  renewer_.join();
}

std::string ClusterSlots::TryTake(std::string const& function, int count) {
  int64_t now = ToUnixMillis(clock_.Now());
  auto slot = store_.ClaimOne("run " + function + " #", std::max(count, 1), node_, now, now + kSlotMillis);
  if (!slot.ok()) {
    std::fprintf(stderr, "ferry: cannot take a slot of %s: %s\n", function.c_str(), slot.status().message().c_str());
    return "";
  }
  if (!*slot) return "";
  std::lock_guard lock(mu_);
  held_.insert(**slot);
  return **slot;
}

bool ClusterSlots::AnyFree(std::string const& function, int count) {
  auto held = store_.CountClaims("run " + function + " #", ToUnixMillis(clock_.Now()));
  return !held.ok() || *held < std::max(count, 1);
}

void ClusterSlots::Give(std::string const& slot) {
  {
    std::lock_guard lock(mu_);
    if (held_.erase(slot) == 0) return;
  }
  // When the database cannot be reached, the slot is no longer renewed: it runs out.
  (void)store_.Release(slot, node_);
}

bool ClusterSlots::Holds(std::string const& slot) {
  std::lock_guard lock(mu_);
  return held_.contains(slot);
}

void ClusterSlots::RenewLoop() {
  pthread_setname_np(pthread_self(), "ferry-slots");
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; })) {
    if (held_.empty()) continue;
    std::vector<std::string> names(held_.begin(), held_.end());
    lock.unlock();
    int64_t now = ToUnixMillis(clock_.Now());
    auto lost = store_.RenewClaims(names, node_, now, now + kSlotMillis);
    lock.lock();
    if (!lost.ok()) {
      std::fprintf(stderr, "ferry: cannot renew this node's %zu slots: %s\n", names.size(),
                   lost.status().message().c_str());
      continue;
    }
    // Lost means this node went unheard for kSlotMillis (the database away, the node stalled) and another node
    // took the slot: the execution holding it may overlap another one. It is not renewed again.
    for (auto const& name : *lost) {
      std::fprintf(stderr, "ferry: lost slot %s to another node after %lld ms unrenewed\n", name.c_str(),
                   static_cast<long long>(kSlotMillis));
      held_.erase(name);
    }
  }
}

}  // namespace ferry
