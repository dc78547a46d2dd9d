#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"
#include "store/topic_store.h"

namespace ferry {

// Snapshots of subscriptions, and seeking a subscription to a time or a snapshot.
class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;

  // Takes a snapshot of the subscription's unacknowledged messages; `snapshot` gives its name and labels.
  [[nodiscard]] virtual StatusOr<Snapshot> CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                                          int64_t now_ms) = 0;
  [[nodiscard]] virtual StatusOr<Snapshot> GetSnapshot(std::string const& name) = 0;
  [[nodiscard]] virtual Status UpdateSnapshot(Snapshot const& snapshot) = 0;  // labels and expiry
  [[nodiscard]] virtual Status DeleteSnapshot(std::string const& name) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<Snapshot>> ListSnapshots(std::string const& project, Page page) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> ListTopicSnapshots(std::string const& topic,
                                                                              Page page) = 0;
  // Messages published before `time_ms` become acknowledged, later ones unacknowledged (acknowledged ones only
  // where retainAckedMessages kept them), and every unacknowledged message deliverable now.
  [[nodiscard]] virtual Status SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) = 0;
  // The snapshot's messages and every message published after it become unacknowledged, the rest acknowledged.
  [[nodiscard]] virtual Status SeekToSnapshot(std::string const& subscription, std::string const& snapshot,
                                              int64_t now_ms) = 0;
};

}  // namespace ferry
