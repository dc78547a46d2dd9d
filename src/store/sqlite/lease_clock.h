#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>

namespace ferry {

// The deadlines of the leased deliveries of each subscription, in memory, for the SQLite store's writer thread.
//
// A leased delivery row is not in the index the lease query reads (deliveries_waiting covers `leased = 0` rows
// only): leasing a row then only takes its entry out of that index, and acking a leased row touches no index
// entry at all, where moving the entry to the lease's deadline and deleting it cost as much again as the row
// itself (docs/performance.md, "Consume + ack CPU"). The expired leases are found here instead.
//
// What the store relies on: every leased row of a subscription whose state is known has an entry here no later
// than its written deadline. Entries for rows that have since been acked, nacked or dropped are harmless (the
// store reads the row before acting on one). A subscription's state is unknown until a scan of its leased rows
// (after a start, after a change that touched the clock was rolled back, or when some did not fit under the
// capacity: then again once the earliest of those that did not fit is due).
class LeaseClock {
 public:
  explicit LeaseClock(std::size_t capacity) : capacity_(capacity) {}

  // Whether the store must scan the leased rows of `sub` before trusting this clock with it at `now_ms`.
  [[nodiscard]] bool NeedsScan(int64_t sub, int64_t now_ms) const;
  // Starts what a scan of `sub` finds (or a change that left none of its rows leased): nothing leased yet.
  void StartScan(int64_t sub);
  // The row's deadline as now written: added, or moved. Past the capacity, the subscription's state becomes
  // partial (scanned again when this deadline is due).
  void Set(int64_t sub, int64_t msg, int64_t deadline);
  void Erase(int64_t sub, int64_t msg);
  // Forgets `sub`, or every subscription: each is scanned again on its next use.
  void Forget(int64_t sub);
  void ForgetAll();
  // Takes out the entries of `sub` due at `now_ms`, earliest first.
  std::vector<int64_t> TakeDue(int64_t sub, int64_t now_ms);

  [[nodiscard]] std::size_t size() const { return size_; }
  // Counts every change: a store change that changed the clock and then rolled back must forget it (the rows are
  // as they were, the clock is not).
  [[nodiscard]] uint64_t changes() const { return changes_; }

 private:
  struct SubLeases {
    absl::flat_hash_map<int64_t, int64_t> deadline_of;         // msg_id -> deadline (unix ms)
    absl::btree_set<std::pair<int64_t, int64_t>> by_deadline;  // (deadline, msg_id)
    int64_t rescan_at = INT64_MAX;  // partial: the earliest deadline of a lease that did not fit
  };

  std::size_t const capacity_;
  std::size_t size_ = 0;
  uint64_t changes_ = 0;
  absl::flat_hash_map<int64_t, SubLeases> subs_;  // present: scanned
};

}  // namespace ferry
