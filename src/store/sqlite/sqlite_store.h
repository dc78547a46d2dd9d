// The embedded store's implementation, shared by its source files (one a concern: sqlite_topics.cc,
// sqlite_delivery.cc, sqlite_snapshots.cc, sqlite_records.cc; the shared steps in sqlite_store.cc). Not for use
// outside src/store/sqlite/: everyone else sees store/store.h.
//
// One SQLite database in WAL mode. Every write goes through the GroupCommitWriter (one writer thread, one
// transaction and one fsync for the requests waiting together); reads use a second connection, which WAL lets run
// beside the writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/filter.h"
#include "model/json_codec.h"
#include "store/ack_id.h"
#include "store/sqlite/group_commit.h"
#include "store/sqlite/lease_clock.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store.h"
#include "store/stored_json.h"

namespace ferry {

Status MigrateSqliteStore(SqliteDb& db);

// Steps a statement to its end, collecting its first column.
StatusOr<std::vector<int64_t>> FirstColumn(SqliteStmt& st);
// The same, appended to `out`.
Status AppendFirstColumn(SqliteStmt& st, std::vector<int64_t>& out);

struct SubRow {
  int64_t id = 0;
  Subscription spec;
  int64_t seeks = 0;  // seeks so far: part of each ack id (store/ack_id.h)
};

// A subscription as a publish sees it: which messages it takes, and whether it keeps their ordering keys.
struct FanoutTarget {
  int64_t sub_id = 0;
  Filter filter;
  bool ordered = false;
};

// The statements of a seek for one condition `keep` on publish_time and msg_id (?1 is the subscription, ?2
// and ?3 the condition's own parameters, ?4 the time now). Built once: the statement cache keys on addresses.
struct SeekSql {
  explicit SeekSql(std::string const& keep);
  std::string back, forget, rest;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<SqliteDb> writer, std::unique_ptr<SqliteDb> reader, int64_t last_message_id,
              int wal_fd);

  // ---- TopicStore (sqlite_topics.cc) ----
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

  // ---- MessageQueue (sqlite_delivery.cc) ----
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

  // ---- SnapshotStore (sqlite_snapshots.cc) ----
  StatusOr<Snapshot> CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                    int64_t now_ms) override;
  StatusOr<Snapshot> GetSnapshot(std::string const& name) override;
  Status UpdateSnapshot(Snapshot const& snapshot) override;
  Status DeleteSnapshot(std::string const& name) override;
  StatusOr<std::vector<Snapshot>> ListSnapshots(std::string const& project, Page page) override;
  StatusOr<std::vector<std::string>> ListTopicSnapshots(std::string const& topic, Page page) override;
  Status SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) override;
  Status SeekToSnapshot(std::string const& subscription, std::string const& snapshot, int64_t now_ms) override;

  // ---- DeploymentStore, BucketStore, ScheduleStore, ClaimStore (sqlite_records.cc) ----
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
  // Runs `fn` in the next group commit (see GroupCommitWriter::Write). Leases are not durable: one lost in a
  // crash only means the message is delivered again, which at-least-once delivery allows; everything else a
  // client is told is done, is.
  Status Write(std::function<Status(SqliteDb&)> fn, bool durable = true) {
    return writer_->Write(
        [this, fn = std::move(fn)](SqliteDb& db) {
          // A job that fails is rolled back (to its savepoint): if it changed the lease clock, the clock no longer
          // matches the rows, and is read back from them.
          uint64_t const changes = lease_clock_.changes();
          try {
            Status st = fn(db);
            if (!st.ok() && lease_clock_.changes() != changes) lease_clock_.ForgetAll();
            return st;
          } catch (...) {
            lease_clock_.ForgetAll();
            throw;
          }
        },
        durable);
  }
  // The read connection, held for the caller's scope.
  struct Reader {
    std::unique_lock<std::mutex> lock;
    SqliteDb* db;
    SqliteDb* operator->() const { return db; }
  };
  Reader Read() { return {std::unique_lock(read_mu_), reader_.get()}; }

  // ---- shared steps, in the caller's transaction on the writer thread (sqlite_store.cc) ----
  static StatusOr<std::optional<int64_t>> FindTopicId(SqliteDb& db, std::string const& name);
  // A subscription by name, from the cache of decoded specs (decoding the JSON spec for every pull and ack cost
  // more than the rows they touch).
  StatusOr<std::optional<SubRow>> FindSub(SqliteDb& db, std::string const& name);
  // Wraps a job that changes subscriptions so the caches forget them before and after it.
  std::function<Status(SqliteDb&)> ChangingSubscriptions(std::function<Status(SqliteDb&)> fn);
  void ForgetSubscriptions();  // the decoded subscriptions and fan-outs, on the writer thread
  // The current lease `ref` names if it holds past `now_ms`: its deadline as its row has it, and as an extension
  // held in memory makes it (see held_extensions_).
  struct LeaseDeadline {
    int64_t written = 0;
    int64_t until = 0;
  };
  StatusOr<std::optional<LeaseDeadline>> CurrentLease(SqliteDb& db, SubRow const& sub, AckRef const& ref,
                                                      int64_t now_ms);
  StatusOr<bool> IsCurrentLease(SqliteDb& db, SubRow const& sub, AckRef const& ref, int64_t now_ms);
  StatusOr<int64_t> RemoveDeliveries(SqliteDb& db, SubRow const& sub, std::vector<int64_t> const& msg_ids);
  static Status CheckDeadLetterTopic(SqliteDb& db, Subscription const& sub);
  Status ApplyBucketEvents(SqliteDb& db, std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                           std::string const& topic, std::vector<PubsubMessage> const& events, int64_t now_ms);
  // Writes a row's deadline (leased) or when it may be delivered again (not leased), and tells the lease clock.
  Status SetVisibility(SqliteDb& db, int64_t sub_id, int64_t msg_id, int64_t visible_at, bool leased);
  StatusOr<std::vector<FanoutTarget> const*> FanoutOf(SqliteDb& db, int64_t topic_id);
  // `only_sub` (not 0): a copy for that subscription alone (a redrive), not every subscription of the topic.
  StatusOr<std::vector<int64_t>> InsertMessages(SqliteDb& db, int64_t topic_id,
                                                std::vector<PubsubMessage> const& messages, int64_t now_ms,
                                                int64_t only_sub = 0);
  Status MarkLeased(SqliteDb& db, int64_t sub_id, std::vector<int64_t> const& msg_ids, int64_t until);
  // Reads the leased rows of a subscription into the lease clock.
  Status ScanLeases(SqliteDb& db, int64_t sub_id);
  // The leases of `sub` whose deadline has passed (an extension held in memory may still hold one: it is written
  // then). Each is a failed attempt: dead-lettered when its attempts are spent; otherwise, with `retry`, it waits
  // out its backoff, and without (maintenance) it stays for the next lease to count.
  struct Expired {
    int expired = 0;
    int dead_lettered = 0;
  };
  StatusOr<Expired> ExpireLeases(SqliteDb& db, SubRow const& sub, int64_t now_ms, bool retry);
  static Status ReleaseMessages(SqliteDb& db, std::vector<int64_t> const& msg_ids);
  static StatusOr<int64_t> DropDeliveries(SqliteDb& db, int64_t sub_id, int64_t before_ms);
  static Status DropAcked(SqliteDb& db, int64_t sub_id, int64_t before_ms);
  static Status DropSnapshot(SqliteDb& db, int64_t snap_id);
  static StatusOr<PubsubMessage> LoadMessage(SqliteDb& db, int64_t msg_id);
  StatusOr<bool> DeadLetter(SqliteDb& db, SubRow const& sub, int64_t msg_id, int attempts, int64_t now_ms);

  // sqlite_delivery.cc
  StatusOr<ModifyResult> Modify(std::string const& subscription, std::vector<AckRef> const& refs, int seconds,
                                std::string const* error, int64_t now_ms);
  // sqlite_snapshots.cc
  static StatusOr<Snapshot> DecodeSnapshot(SqliteStmt& st);
  static SeekSql const& SeekToTimeSql();
  static SeekSql const& SeekToSnapshotSql();
  Status Seek(SqliteDb& db, SubRow const& sub, SeekSql const& sql, int64_t p2, int64_t p3, int64_t now_ms);

  // Ack deadline extensions held in memory instead of written (writer thread only). A subscriber's client extends
  // every lease it receives at once, and again while it works (Google's clients all do): writing each of those to
  // its delivery row cost as much as the lease itself, and an extension only matters when the deadline it
  // replaces passes. So an extension to a later deadline stays here, and is written to its row only when the row's
  // own deadline passes while it holds (a lease, or maintenance, finds the row expired). A crash forgets them: the
  // leases then end at their written deadlines, earlier than asked, and the messages come again (at-least-once).
  // A rolled-back write may leave one here or take one away: either way a lease ends later or sooner, never a
  // message lost. Bounded: past kMaxHeldExtensions, extensions are written through.
  struct HeldExtension {
    int attempt = 0;     // the lease it extends
    int64_t until = 0;   // unix ms
  };
  struct DeliveryKeyHash {
    std::size_t operator()(std::pair<int64_t, int64_t> const& k) const noexcept {
      return std::hash<int64_t>()(k.first * 1'000'003 ^ k.second);
    }
  };
  static constexpr std::size_t kMaxHeldExtensions = 200'000;
  // The deadline an extension holds for this lease of (sub_id, msg_id), if one does.
  std::optional<int64_t> HeldUntil(int64_t sub_id, int64_t msg_id, int attempt) const;
  void ForgetExtensions(int64_t sub_id, std::vector<int64_t> const& msg_ids);
  void ForgetExtensions(int64_t sub_id);
  // If an extension holds this lease of a row whose written deadline has passed: writes it to the row, and true.
  StatusOr<bool> WriteHeldExtension(SqliteDb& db, int64_t sub_id, int64_t msg_id, int attempt, int64_t now_ms);

  // On the writer thread, before each commit and after each batch.
  Status BeforeCommit(SqliteDb& db);
  void AfterBatch(bool committed);

  std::unique_ptr<SqliteDb> writer_db_;  // used only on the writer thread
  std::mutex read_mu_;
  std::unique_ptr<SqliteDb> reader_;  // GUARDED_BY(read_mu_)
  int64_t last_message_id_;           // writer thread only: the last id handed out
  int64_t committed_message_id_;      // writer thread only: the value meta holds
  std::unordered_map<std::string, SubRow> sub_cache_;                    // writer thread only
  // writer thread only: every subscription, decoded, for maintenance each second (decoding thousands of specs
  // was most of an idle daemon's CPU); forgotten with sub_cache_.
  std::optional<std::vector<SubRow>> all_subs_;
  std::unordered_map<int64_t, std::vector<FanoutTarget>> fanout_cache_;  // writer thread only: by topic id
  std::vector<std::string> published_topics_;  // writer thread only: topics published to in this batch
  // writer thread only: by (sub_id, msg_id)
  std::unordered_map<std::pair<int64_t, int64_t>, HeldExtension, DeliveryKeyHash> held_extensions_;
  // writer thread only. About 40 bytes a lease; past that many, a subscription's leases are scanned instead.
  static constexpr std::size_t kMaxClockedLeases = 500'000;
  LeaseClock lease_clock_{kMaxClockedLeases};
  uint64_t clock_changes_before_batch_ = 0;  // writer thread only
  std::mutex listener_mu_;
  std::function<void(std::string const& topic)> publish_listener_;  // GUARDED_BY(listener_mu_)
  std::unique_ptr<GroupCommitWriter> writer_;  // last: its thread stops before the rest goes
};

}  // namespace ferry
