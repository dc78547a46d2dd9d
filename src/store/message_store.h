#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

struct LeaseResult {
  std::vector<ReceivedMessage> messages;
  int expired = 0;        // leases found expired and handed out again
  int dead_lettered = 0;  // exhausted messages moved to the dead-letter topic instead
};

struct ModifyResult {
  int nacked = 0;
  int dead_lettered = 0;
  // Exactly-once subscriptions only: ack ids whose lease is no longer current (expired, settled, redelivered).
  std::vector<std::string> invalid_ack_ids;
};

struct AckResult {
  int acked = 0;
  // Exactly-once subscriptions only: ack ids whose lease is no longer current, so the ack did nothing. Elsewhere
  // any attempt's ack id acknowledges its message and stale ones are ignored.
  std::vector<std::string> invalid_ack_ids;
};

struct MaintenanceResult {
  // Per subscription name: leases that expired with no delivery attempt left and went to the dead-letter topic.
  std::vector<std::pair<std::string, int>> dead_lettered;
  int64_t dropped_by_retention = 0;
};

struct SubscriptionStats {
  std::string name;
  int64_t backlog = 0;                  // messages not yet acknowledged
  int64_t oldest_unacked_publish_ms = 0;  // 0 with an empty backlog
};

// A deployed function, stored as its JSON spec (model/function_spec.h) under its full name.
struct FunctionRecord {
  std::string name;  // projects/{p}/locations/{r}/functions/{f}
  std::string spec;  // JSON
};

// A schedule's stored spec and firing state.
struct ScheduleRecord {
  std::string name;         // projects/{p}/locations/{r}/jobs/{j}
  std::string spec;         // JSON (model/schedule_spec.h)
  int64_t next_fire_ms = -1;  // the next tick; -1: none
  int64_t last_fired_ms = 0;  // the tick last fired (its scheduled time), 0: never
  bool paused = false;
};

// A bucket: a directory whose files are Cloud Storage objects.
struct BucketRecord {
  std::string name;
  std::string project;  // the project of the deploy that declared it: its events topic is there
  std::string path;     // absolute
  bool versioning = false;  // an overwritten or deleted object's generation is archived, not deleted
  friend bool operator==(BucketRecord const&, BucketRecord const&) = default;
};

// A change to what a bucket's events said of one object: its resource (JSON) now, or nullopt when it is gone.
struct BucketObjectChange {
  std::string name;
  std::optional<std::string> object;
};

// Everything one deploy changes, applied in one transaction: all of it or none.
struct Deployment {
  std::vector<Topic> create_topics;
  std::vector<Subscription> create_subscriptions;
  std::vector<Subscription> update_subscriptions;
  std::vector<std::string> delete_subscriptions;
  std::vector<FunctionRecord> put_functions;
  std::vector<std::string> delete_functions;
  // A new spec and next tick; an existing schedule keeps its last tick and whether it is paused.
  std::vector<ScheduleRecord> put_schedules;
  std::vector<std::string> delete_schedules;
  std::vector<BucketRecord> put_buckets;
  std::vector<std::string> delete_buckets;
};

struct Page {
  std::string after;  // exclusive lower bound on the name; empty: from the start
  int limit = 100;
};

// Durable storage for topics, subscriptions and each subscription's copy of every message, including lease state
// (who holds a message until when): a message is leased, acknowledged, nacked or dead-lettered only through it,
// so several daemons sharing one database can deliver from it. Every mutating call is durable when it returns
// OK. Thread-safe.
class MessageStore {
 public:
  virtual ~MessageStore() = default;

  [[nodiscard]] virtual Status CreateTopic(Topic const& topic) = 0;
  [[nodiscard]] virtual StatusOr<Topic> GetTopic(std::string const& name) = 0;
  [[nodiscard]] virtual Status UpdateTopic(Topic const& topic) = 0;
  // Subscriptions of a deleted topic stay, with their topic set to "_deleted-topic_".
  [[nodiscard]] virtual Status DeleteTopic(std::string const& name) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<Topic>> ListTopics(std::string const& project, Page page) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> ListTopicSubscriptions(std::string const& topic,
                                                                                  Page page) = 0;

  // NOT_FOUND when the topic or the dead-letter topic does not exist.
  [[nodiscard]] virtual Status CreateSubscription(Subscription const& sub) = 0;
  [[nodiscard]] virtual StatusOr<Subscription> GetSubscription(std::string const& name) = 0;
  [[nodiscard]] virtual Status UpdateSubscription(Subscription const& sub) = 0;
  [[nodiscard]] virtual Status DeleteSubscription(std::string const& name) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<Subscription>> ListSubscriptions(std::string const& project,
                                                                              Page page) = 0;

  // ---- snapshots and seek ----
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

  // Every subscription with a push endpoint, of every project.
  [[nodiscard]] virtual StatusOr<std::vector<Subscription>> ListPushSubscriptions() = 0;

  // Appends the messages, hands a copy to each subscription of the topic, returns their ids in order.
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> Publish(std::string const& topic,
                                                                   std::vector<PubsubMessage> const& messages,
                                                                   int64_t now_ms) = 0;
  // Leases up to `max` deliverable messages for `ack_deadline_seconds` (0: the subscription's ack deadline),
  // and no more than `max_bytes` of them (data, attributes and ordering key; the first message always goes): the
  // rest stay available, with no delivery attempt counted. Messages whose last lease expired with no attempts
  // left go to the dead-letter topic instead.
  [[nodiscard]] virtual StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms,
                                                    int ack_deadline_seconds, int64_t max_bytes) = 0;
  [[nodiscard]] StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms) {
    return Lease(subscription, max, now_ms, 0, kMaxLeaseBytes);
  }
  // What one pull or StreamingPull response carries at most: a response stays well under gRPC's 64 MB send limit
  // and a REST answer's memory is bounded, whatever the messages' sizes.
  static constexpr int64_t kMaxLeaseBytes = 16 * 1000 * 1000;
  // Removes the acknowledged messages (or keeps them as acknowledged, with retainAckedMessages). Malformed ack ids
  // are INVALID_ARGUMENT.
  [[nodiscard]] virtual StatusOr<AckResult> Acknowledge(std::string const& subscription,
                                                        std::vector<std::string> const& ack_ids, int64_t now_ms) = 0;
  // Sets the lease of each message to `seconds` from now; 0 is a nack (retry policy backoff, or dead letter
  // when no attempt is left).
  [[nodiscard]] virtual StatusOr<ModifyResult> ModifyAckDeadline(std::string const& subscription,
                                                                 std::vector<std::string> const& ack_ids,
                                                                 int seconds, int64_t now_ms) = 0;

  // Gives back leases whose messages never reached a subscriber (the stream they were leased for ended before
  // they were sent): available again at once, and their delivery attempt not counted, so the next delivery has
  // the attempt number this one would have had. Ack ids whose lease is no longer current are skipped. Returns how
  // many came back.
  [[nodiscard]] virtual StatusOr<int> ReturnUnsent(std::string const& subscription,
                                                   std::vector<std::string> const& ack_ids, int64_t now_ms) = 0;

  // A nack (as ModifyAckDeadline with 0) that keeps `error` with the delivery: when the message is
  // dead-lettered, the error travels with it in the kLastErrorAttribute attribute.
  [[nodiscard]] virtual StatusOr<ModifyResult> Nack(std::string const& subscription, std::string const& ack_id,
                                                    std::string const& error, int64_t now_ms) = 0;

  // Dead-letters expired leases that have no attempt left and, with `apply_retention`, drops messages past their
  // subscription's retention (a scan of every backlog, so callers do it less often).
  [[nodiscard]] virtual StatusOr<MaintenanceResult> Maintain(int64_t now_ms, bool apply_retention) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<SubscriptionStats>> Stats() = 0;

  // Called on the store's writer thread after a commit that added messages to `topic`, before the fsync that
  // makes them durable (a consumer may see them that soon; their publisher is answered after the fsync). Must
  // not block; nullptr removes it.
  virtual void SetPublishListener(std::function<void(std::string const& topic)> listener) = 0;

  // ---- functions ----
  // Applies a deploy atomically. Creating something that exists, or changing something missing, fails it whole.
  [[nodiscard]] virtual Status ApplyDeployment(Deployment const& deployment) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<FunctionRecord>> ListFunctions() = 0;

  [[nodiscard]] virtual StatusOr<std::vector<BucketRecord>> ListBuckets() = 0;
  // Each object of a bucket as its last event told it: name -> resource (JSON); the name "" holds the directory
  // scanned. So a start can tell what changed while Ferry was down.
  [[nodiscard]] virtual StatusOr<std::map<std::string, std::string>> BucketObjects(std::string const& bucket) = 0;
  // Publishes a bucket's `events` to `topic` and records `changes`, in one transaction.
  [[nodiscard]] virtual Status RecordBucketEvents(std::string const& bucket,
                                                  std::vector<BucketObjectChange> const& changes,
                                                  std::string const& topic, std::vector<PubsubMessage> const& events,
                                                  int64_t now_ms) = 0;

  // ---- schedules ----
  [[nodiscard]] virtual StatusOr<std::vector<ScheduleRecord>> ListSchedules() = 0;
  // Fires tick `tick_ms` of a schedule once: unless a tick at or after it has already fired (false), publishes
  // `message` to `topic` (when given), records the tick as fired and sets the next one, all in one transaction,
  // so no tick fires twice, across restarts and nodes.
  [[nodiscard]] virtual StatusOr<bool> FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                                                    std::string const& topic, PubsubMessage const* message,
                                                    int64_t now_ms) = 0;
  // Pauses or resumes; `next_fire_ms` is the next tick from now (set on resume).
  [[nodiscard]] virtual Status SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) = 0;
};

// Ferry's addition to dead-lettered messages: the last error of the function that failed them (at most 1024
// bytes, Pub/Sub's attribute value limit).
inline constexpr char kLastErrorAttribute[] = "FerryLastError";

struct StoreOptions {
  // Directory holding the database file; created when missing.
  std::string data_dir = "./data";
  // fsync each commit (group commit shares it between concurrent requests). Off only for throwaway data.
  bool sync = true;
};

StatusOr<std::unique_ptr<MessageStore>> MakeSqliteMessageStore(StoreOptions const& options);

}  // namespace ferry
