// The PostgreSQL store, shared by its source files (pg_store.cc: connections, schema, the shared steps;
// pg_topics.cc, pg_delivery.cc, pg_snapshots.cc, pg_records.cc: one a concern). Not for use outside
// src/store/postgres/: everyone else sees store/store.h. docs/scale-out.md explains the design.
#pragma once

#include <atomic>
#include <chrono>
#include <limits>
#include <unordered_map>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/filter.h"
#include "store/ack_id.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"

namespace ferry {

struct PgSub {
  int64_t id = 0;
  Subscription spec;
  int64_t seeks = 0;  // seeks so far: part of each ack id (store/ack_id.h)
};

class PgStore final : public Store {
 public:
  PgStore(std::string conninfo, int pool_size);
  ~PgStore() override;
  // Runs the migrations (once, whichever node starts first) and starts listening for other nodes' publishes.
  Status Start();

  // ---- TopicStore (pg_topics.cc) ----
  Status CreateTopic(Topic const& topic) override;
  StatusOr<Topic> GetTopic(std::string const& name) override;
  Status UpdateTopic(Topic const& topic) override;
  Status DeleteTopic(std::string const& name) override;
  StatusOr<std::vector<Topic>> ListTopics(std::string const& project, Page page) override;
  StatusOr<std::vector<std::string>> ListTopicSubscriptions(std::string const& topic, Page page) override;
  Status CreateSubscription(Subscription const& sub) override;
  StatusOr<Subscription> GetSubscription(std::string const& name) override;
  Status UpdateSubscription(Subscription const& sub) override;
  Status DeleteSubscription(std::string const& name) override;
  StatusOr<std::vector<Subscription>> ListSubscriptions(std::string const& project, Page page) override;
  StatusOr<std::vector<Subscription>> ListPushSubscriptions() override;

  // ---- MessageQueue (pg_delivery.cc) ----
  StatusOr<std::vector<std::string>> Publish(std::string const& topic, std::vector<PubsubMessage> const& messages,
                                             int64_t now_ms) override;
  using MessageQueue::Lease;
  StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms, int ack_deadline_seconds,
                              int64_t max_bytes) override;
  StatusOr<AckResult> Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                  int64_t now_ms) override;
  StatusOr<ModifyResult> ModifyAckDeadline(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                           int seconds, int64_t now_ms) override;
  StatusOr<int> ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids,
                             int64_t now_ms) override;
  StatusOr<ModifyResult> Nack(std::string const& subscription, std::string const& ack_id, std::string const& error,
                              int64_t now_ms) override;
  StatusOr<MaintenanceResult> Maintain(int64_t now_ms, bool apply_retention) override;
  StatusOr<std::vector<HeldMessage>> Peek(std::string const& subscription, int64_t after_id, int max) override;
  StatusOr<std::vector<std::string>> MoveMessages(std::string const& subscription,
                                                  std::vector<std::string> const& message_ids,
                                                  std::string const& to_subscription, MessageRewrite const& rewrite,
                                                  int64_t now_ms) override;
  StatusOr<std::vector<SubscriptionStats>> Stats() override;
  void SetPublishListener(std::function<void(std::string const& topic)> listener) override;

  // ---- SnapshotStore (pg_snapshots.cc) ----
  StatusOr<Snapshot> CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                    int64_t now_ms) override;
  StatusOr<Snapshot> GetSnapshot(std::string const& name) override;
  Status UpdateSnapshot(Snapshot const& snapshot) override;
  Status DeleteSnapshot(std::string const& name) override;
  StatusOr<std::vector<Snapshot>> ListSnapshots(std::string const& project, Page page) override;
  StatusOr<std::vector<std::string>> ListTopicSnapshots(std::string const& topic, Page page) override;
  Status SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) override;
  Status SeekToSnapshot(std::string const& subscription, std::string const& snapshot, int64_t now_ms) override;

  // ---- DeploymentStore, BucketStore, ScheduleStore, ClaimStore (pg_records.cc) ----
  Status ApplyDeployment(Deployment const& deployment) override;
  StatusOr<std::vector<FunctionRecord>> ListFunctions() override;
  StatusOr<std::vector<BucketRecord>> ListBuckets() override;
  StatusOr<std::map<std::string, std::string>> BucketObjects(std::string const& bucket) override;
  Status RecordBucketEvents(std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                            std::string const& topic, std::vector<PubsubMessage> const& events,
                            int64_t now_ms) override;
  StatusOr<std::optional<std::string>> BucketObject(std::string const& bucket, std::string const& name) override;
  Status UpdateBucketObject(std::string const& bucket, std::string const& name, std::string const& topic,
                            std::function<BucketObjectUpdate(std::optional<std::string> const&)> const& decide,
                            int64_t now_ms) override;
  StatusOr<std::vector<ScheduleRecord>> ListSchedules() override;
  StatusOr<bool> FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                              std::string const& topic, PubsubMessage const* message, int64_t now_ms) override;
  Status SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) override;
  StatusOr<bool> Claim(std::string const& name, std::string const& node, int64_t now_ms, int64_t until_ms) override;
  StatusOr<int> CountClaims(std::string const& prefix, int64_t now_ms) override;
  StatusOr<std::vector<std::string>> RenewClaims(std::vector<std::string> const& names, std::string const& node,
                                                 int64_t now_ms, int64_t until_ms) override;
  StatusOr<std::optional<std::string>> ClaimOne(std::string const& prefix, int count, std::string const& node,
                                                int64_t now_ms, int64_t until_ms) override;
  Status Release(std::string const& name, std::string const& node) override;
  Status ReportNode(std::string const& node, std::string const& status, int64_t until_ms) override;
  StatusOr<std::vector<NodeReport>> LiveNodes(int64_t now_ms) override;

 private:
  // Runs `fn` in one transaction (READ COMMITTED, rows locked where it matters), committed before it returns:
  // durable then, with synchronous_commit on. A serialization failure or deadlock runs it again, twice at most.
  Status Txn(std::function<Status(PgConn&)> const& fn);
  // A read outside any explicit transaction.
  Status Read(std::function<Status(PgConn&)> const& fn);

  // ---- shared steps, in the caller's transaction (pg_store.cc) ----
  static StatusOr<std::optional<int64_t>> FindTopicId(PgConn& db, std::string const& name);
  static StatusOr<std::optional<PgSub>> FindSub(PgConn& db, std::string const& name);
  // Tells every node (this one too), when the transaction commits, that `topic`'s subscriptions have messages.
  static Status NotifyAll(PgConn& db, std::string const& topic);
  static Status CheckDeadLetterTopic(PgConn& db, Subscription const& sub);
  static StatusOr<bool> IsCurrentLease(PgConn& db, PgSub const& sub, AckRef const& ref, int64_t now_ms);
  static StatusOr<int64_t> RemoveDeliveries(PgConn& db, PgSub const& sub, std::vector<int64_t> const& msg_ids);
  static Status SetVisibility(PgConn& db, int64_t sub_id, int64_t msg_id, int64_t visible_at, bool leased);
  static Status DropSubscriptionRows(PgConn& db, int64_t sub_id);
  static Status LockBucket(PgConn& db, std::string const& bucket);
  StatusOr<bool> ApplyBucketEvents(PgConn& db, std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                                   std::string const& topic, std::vector<PubsubMessage> const& events, int64_t now_ms);
  // Appends messages to a topic, a copy to each subscription whose filter takes it (to `only_sub` alone when not 0:
  // a redrive), and tells every node.
  StatusOr<std::vector<int64_t>> InsertMessages(PgConn& db, int64_t topic_id, std::string const& topic,
                                                std::vector<PubsubMessage> const& messages, int64_t now_ms,
                                                int64_t only_sub = 0);
  static StatusOr<PubsubMessage> LoadMessage(PgConn& db, int64_t msg_id);
  StatusOr<bool> DeadLetter(PgConn& db, PgSub const& sub, int64_t msg_id, int attempts, int64_t now_ms);
  // Message partitions (pg_store.cc): created ahead of the ids in use, dropped once nothing refers to them.
  Status EnsurePartitions(int64_t up_to_id);
  Status DropUnusedPartitions();

  // pg_delivery.cc
  StatusOr<ModifyResult> Modify(std::string const& subscription, std::vector<AckRef> const& refs, int seconds,
                                std::string const* error, int64_t now_ms);
  // pg_snapshots.cc
  Status Seek(PgConn& db, PgSub const& sub, int64_t time_ms, std::optional<int64_t> snap_id, int64_t now_ms);

  // The lease scan's cursor per subscription (pg_delivery.cc).
  static constexpr int64_t kWholeRange = std::numeric_limits<int64_t>::min();
  int64_t ScanFrom(int64_t sub_id);
  // Moves the cursor on to `from`; after a scan of the whole range (the first row it found given) starts a window.
  void SetScanFrom(int64_t sub_id, int64_t from, std::optional<int64_t> whole_range_lowest);
  void ForgetScanFrom(int64_t sub_id);  // the next lease scans the whole range

  void ListenLoop();
  void Notify(std::string const& topic);

  PgPool pool_;
  std::mutex ddl_mu_;                         // one partition change at a time from this node
  std::atomic<int64_t> partitions_end_{0};   // ids below this have a partition
  std::mutex listener_mu_;
  std::function<void(std::string const& topic)> publish_listener_;  // GUARDED_BY(listener_mu_)
  struct Cursor {
    int64_t from = kWholeRange;
    std::chrono::steady_clock::time_point set;  // its window began then (a full scan)
    std::chrono::steady_clock::duration window = std::chrono::seconds(1);
  };
  std::mutex cursor_mu_;
  std::unordered_map<int64_t, Cursor> cursors_;  // GUARDED_BY(cursor_mu_), by subscription id
  // Maintenance's decoded subscriptions by id, each with the spec text it was decoded from: another node may
  // change a spec, so each run reads the texts and decodes only those that differ.
  struct DecodedSub {
    std::string text;
    PgSub sub;
  };
  std::mutex maintain_mu_;
  std::unordered_map<int64_t, DecodedSub> maintained_subs_;  // GUARDED_BY(maintain_mu_)
  std::atomic<bool> stop_{false};
  std::thread listen_thread_;
};

}  // namespace ferry
