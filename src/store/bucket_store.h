#pragma once

#include <cstdint>
#include <functional>
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

// What to record of one object, given what its last event said of it: its new state and the events that tell it
// (both empty: nothing new).
struct BucketObjectUpdate {
  std::vector<BucketObjectChange> changes;
  std::vector<PubsubMessage> events;
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
  // One object as its last event told it (nullopt: none told of it, or its last event said it went).
  [[nodiscard]] virtual StatusOr<std::optional<std::string>> BucketObject(std::string const& bucket,
                                                                          std::string const& name) = 0;
  // Records what `decide` makes of object `name`'s stored resource (nullopt: none), its changes and events, in one
  // transaction that no other update of the bucket's objects interleaves with. So the nodes that see one file
  // change (an upload through one node's API, the directory watch on another) raise its events once. `decide` may
  // run more than once (a retried transaction) and must not block.
  [[nodiscard]] virtual Status UpdateBucketObject(
      std::string const& bucket, std::string const& name, std::string const& topic,
      std::function<BucketObjectUpdate(std::optional<std::string> const& stored)> const& decide, int64_t now_ms) = 0;
};

}  // namespace ferry
