#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "storage/beneath.h"
#include "store/store.h"

namespace ferry {

// A Cloud Storage object as the JSON API shows it, read from its file.
struct ObjectInfo {
  std::string bucket, name;
  int64_t generation = 0;  // the file's modification time in microseconds, as GCS generations are
  int64_t metageneration = 1;  // counts metadata changes of this generation
  int64_t size = 0;
  std::string content_type;
  std::string md5_hash;    // base64 of the MD5 of the bytes
  std::string crc32c;      // base64 of the big-endian CRC32C of the bytes
  int64_t time_created_ms = 0;
  int64_t updated_ms = 0;
  std::map<std::string, std::string> metadata;  // custom metadata
  std::string ToJson() const;  // the JSON API's object resource
  static StatusOr<ObjectInfo> FromJson(std::string const& json);
};

// Buckets are directories. A file that appears in one (closed after writing, or renamed in), changes, or goes
// raises google.storage.object.finalize, or .delete (also for the old generation of an overwritten object, as
// Cloud Storage does for buckets without versioning; .archive instead with versioning), seen with inotify; a
// metadata change through the API raises .metadataUpdate. Each event is published to the bucket's events topic
// (StorageEventsTopic), with the object resource as data and Cloud Storage's notification attributes, so
// functions consume them like Pub/Sub messages: retried, dead-lettered, durable across restarts. Each object's
// state (with its content type and custom metadata) is stored with its event, so on start the files that
// changed while Ferry was down raise their events; the files of a directory scanned the first time raise none.
//
// Nodes sharing a database (docs/scale-out.md) share the buckets' directories (NFS, say). One node at a time
// watches a bucket, the one holding its claim ("watch <bucket>", renewed every second); another takes it over
// when it stops renewing, and raises what changed meanwhile. Inotify sees only the changes made on its own
// machine, so the watching node also rescans its buckets every few seconds. Every node's API raises the events of
// its own uploads, deletes and metadata updates. Each object's update reads and writes its stored state in one
// transaction (BucketStore::UpdateBucketObject), so a change that two nodes see raises its events once.
class BucketService {
 public:
  struct Cluster {
    ClaimStore* claims = nullptr;  // null: this node alone watches every bucket
    std::string node;
  };
  BucketService(BucketStore& store, Broker& broker, Cluster cluster);
  BucketService(BucketStore& store, Broker& broker) : BucketService(store, broker, Cluster()) {}
  ~BucketService();
  BucketService(BucketService const&) = delete;
  BucketService& operator=(BucketService const&) = delete;

  void Start();
  void Stop();
  // Reads the buckets from the store again and watches their directories.
  void Sync();

  // The Cloud Storage JSON API's operations (api/storage). Object names may contain '/'.
  StatusOr<ObjectInfo> Put(std::string const& bucket, std::string const& name, std::string const& bytes,
                           std::string const& content_type, std::map<std::string, std::string> metadata = {});
  StatusOr<ObjectInfo> Get(std::string const& bucket, std::string const& name);
  StatusOr<BucketRecord> Bucket(std::string const& bucket);
  std::vector<BucketRecord> Buckets();
  // An object's file, open for reading (a download streams it), and its size.
  struct OpenObject {
    UniqueFd fd;
    int64_t size = 0;
  };
  StatusOr<OpenObject> Open(std::string const& bucket, std::string const& name);
  // An upload on its way: a hidden file in the bucket's directory that Install renames into place once whole, so
  // an upload of any size is spooled to disk, never held in memory. Dropping it leaves the file: the caller
  // (which knows whether the upload may continue) removes it with Discard.
  struct UploadFile {
    UniqueFd dir;  // the bucket's directory
    UniqueFd fd;   // the file, open for writing
    std::string name;
  };
  StatusOr<UploadFile> NewUploadFile(std::string const& bucket);
  StatusOr<ObjectInfo> Install(std::string const& bucket, std::string const& name, std::string const& root,
                               UploadFile file, std::string const& content_type,
                               std::map<std::string, std::string> metadata);
  static void Discard(UploadFile const& file);
  // The bucket's directory, once `name` is known to be a valid object name.
  StatusOr<std::string> RootOf(std::string const& bucket, std::string const& name, BucketRecord* record);
  StatusOr<std::vector<ObjectInfo>> List(std::string const& bucket, std::string const& prefix);
  Status Delete(std::string const& bucket, std::string const& name);
  StatusOr<ObjectInfo> UpdateMetadata(std::string const& bucket, std::string const& name,
                                      std::string const& content_type, std::map<std::string, std::string> metadata);

 private:
  struct Watched {
    BucketRecord record;
    std::map<std::string, ObjectInfo> objects;  // what the last event said of each object, as this node knows it
    bool watching = false;                      // this node watches the directory
    int64_t scanned_ms = 0;                     // when this node last read the whole directory
  };
  // What an update makes of an object: its state now (nullopt: gone) and the events that tell it; or, when not
  // `changed`, nothing to record.
  struct Outcome {
    std::optional<ObjectInfo> object;
    std::vector<PubsubMessage> events;
    bool changed = false;
  };
  using Decide = std::function<Outcome(std::optional<ObjectInfo> const& stored)>;

  void WatchLoop();
  // The cluster's part, every second: takes, renews and lets go of the claims on watching buckets, and rescans.
  void FollowClaims();
  void Watch(Watched& bucket, bool on);
  std::vector<std::string> AddWatches(std::string const& bucket, std::string const& dir);
  void Reconcile(std::string const& bucket, std::vector<std::string> const& files);
  void OnFileChanged(std::string const& bucket, std::string const& name);
  // Holds mu_: records what `decide` makes of object `name`'s stored state, in one transaction, and returns the
  // object's state after it (the stored one when nothing changed).
  StatusOr<std::optional<ObjectInfo>> Update(Watched& bucket, std::string const& name, Decide const& decide);
  // Holds mu_: raises the events of `object` having been written (its finalize, after the delete or archive of
  // the generation it replaced) unless this generation's were raised already. Returns what its events said.
  StatusOr<ObjectInfo> RaiseWritten(Watched& bucket, ObjectInfo object);
  // What a file written, or gone, makes of an object whose last event said `stored`.
  Outcome Written(BucketRecord const& bucket, ObjectInfo const& object, std::optional<ObjectInfo> const& stored);
  Outcome Gone(BucketRecord const& bucket, std::string const& name, std::optional<ObjectInfo> const& stored);
  // Holds mu_: raises the delete (archive) of object `name` unless its file is there or its going was raised.
  void RaiseGone(Watched& bucket, std::string const& name);
  void OnFileGone(std::string const& bucket, std::string const& name);
  static char const* GoneEventType(BucketRecord const& bucket);
  PubsubMessage Event(BucketRecord const& bucket, ObjectInfo const& object, char const* event_type);
  void Commit(BucketRecord const& bucket, std::vector<BucketObjectChange> changes, std::vector<PubsubMessage> events);

  BucketStore& store_;
  Broker& broker_;
  Cluster const cluster_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that ends the watch loop
  std::mutex mu_;
  std::map<std::string, Watched> buckets_;                          // GUARDED_BY(mu_)
  std::map<int, std::pair<std::string, std::string>> watches_;      // GUARDED_BY(mu_): wd -> (bucket, dir)
  std::thread thread_;
};

}  // namespace ferry
