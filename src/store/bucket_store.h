#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/bucket.h"
#include "model/resources.h"

namespace ferry {

// A change to what a bucket's events said of one object: its resource (JSON) now, or nullopt when it is gone.
struct BucketObjectChange {
  std::string name;
  std::optional<std::string> object;
};

// Buckets and what their events have told of each object. Buckets come and go with deploys
// (store/deployment_store.h).
class BucketStore {
 public:
  virtual ~BucketStore() = default;

  [[nodiscard]] virtual StatusOr<std::vector<BucketRecord>> ListBuckets() = 0;
  // Each object of a bucket as its last event told it: name -> resource (JSON); the name "" holds the directory
  // scanned. So a start can tell what changed while Ferry was down.
  [[nodiscard]] virtual StatusOr<std::map<std::string, std::string>> BucketObjects(std::string const& bucket) = 0;
  // Publishes a bucket's `events` to `topic` and records `changes`, in one transaction.
  [[nodiscard]] virtual Status RecordBucketEvents(std::string const& bucket,
                                                  std::vector<BucketObjectChange> const& changes,
                                                  std::string const& topic, std::vector<PubsubMessage> const& events,
                                                  int64_t now_ms) = 0;
};

}  // namespace ferry
