#pragma once

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/clock.h"
#include "store/claim_store.h"
#include "triggers/pubsub_trigger.h"

namespace ferry {

// A cluster's max_instances: each of a function's executions, on any node, holds one of its
// max_instances x concurrency slots, claims "run <function> #<i>" in the store the nodes share. This node holds
// the ones it takes under its own name and renews them all, every second, in one transaction; a node that dies
// loses its slots when they run out (kSlotMillis), and the other nodes take them. Thread-safe.
class ClusterSlots final : public SlotPool {
 public:
  // How long a slot lasts unrenewed.
  static constexpr int64_t kSlotMillis = 10'000;

  ClusterSlots(ClaimStore& store, Clock& clock, std::string node);
  ~ClusterSlots() override;

  std::string TryTake(std::string const& function, int count) override;
  bool AnyFree(std::string const& function, int count) override;
  void Give(std::string const& slot) override;
  bool Holds(std::string const& slot) override;

 private:
  void RenewLoop();

  ClaimStore& store_;
  Clock& clock_;
  std::string const node_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> held_;  // GUARDED_BY(mu_)
  bool stopping_ = false;       // GUARDED_BY(mu_)
  std::thread renewer_;
};

}  // namespace ferry
