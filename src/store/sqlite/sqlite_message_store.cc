// The embedded store: one SQLite database in WAL mode. Every write runs on one writer thread, which batches the
// requests waiting at that moment into one transaction (group commit): each request gets its own savepoint, so
// one failing request rolls back alone, and all of them share one fsync. Reads use a second connection, which
// WAL lets run beside the writer.
//
// The fsync is pipelined: SQLite runs with synchronous=NORMAL (commits append to the WAL without syncing; the
// database stays consistent after power loss, checkpoints still sync), and a second thread fdatasyncs the WAL
// file and only then answers the requests of every batch committed before that sync. The writer meanwhile runs
// the next batch, so fsync latency overlaps work instead of adding to it. Nothing is answered before it is on
// disk; what another request may read earlier is a prefix of the WAL and is lost together, if at all.
#include <atomic>
#include <cerrno>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <future>
#include <mutex>
#include <set>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <algorithm>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "common/time_util.h"
#include "model/filter.h"
#include "model/json_codec.h"
#include "store/ack_id.h"
#include "store/message_store.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/storage_faults.h"

namespace ferry {
namespace {

// At most `max` bytes of `text`, cut at a character boundary.
std::string TruncateUtf8(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

// Schema migrations, applied in order; PRAGMA user_version records how many ran. Never edit a shipped entry:
// append a new one.
constexpr char const* kMigrations[] = {
    R"sql(
CREATE TABLE topics(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  spec TEXT NOT NULL                     -- the Topic in Pub/Sub's JSON form
);
CREATE TABLE subscriptions(
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so ack ids of a deleted subscription stay dead
  name TEXT NOT NULL UNIQUE,
  topic_id INTEGER,                      -- NULL once the topic is deleted
  spec TEXT NOT NULL                     -- the Subscription in Pub/Sub's JSON form
);
CREATE INDEX subscriptions_by_topic ON subscriptions(topic_id);
-- Stored once however many subscriptions hold it; deleted when the last one lets go (refs = 0).
CREATE TABLE messages(
  id INTEGER PRIMARY KEY,                -- the messageId, assigned from meta.last_message_id: never reused
  topic_id INTEGER NOT NULL,
  publish_time INTEGER NOT NULL,         -- unix ms
  data BLOB NOT NULL,
  attributes TEXT NOT NULL,              -- JSON object
  ordering_key TEXT NOT NULL,
  refs INTEGER NOT NULL                  -- deliveries rows that point here
);
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO meta(key, value) VALUES('last_message_id', 0);
-- A subscription's copy of a message and its lease: leased=1 means held by a subscriber until visible_at.
CREATE TABLE deliveries(
  sub_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  publish_time INTEGER NOT NULL,         -- copied from messages for retention and age without a join
  visible_at INTEGER NOT NULL,           -- unix ms when it may be delivered (again)
  attempts INTEGER NOT NULL DEFAULT 0,   -- deliveries so far
  leased INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(sub_id, msg_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_visibility ON deliveries(sub_id, visible_at);
)sql",
    R"sql(
-- The error of the delivery's last failed attempt, carried into the dead-lettered message.
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
CREATE TABLE functions(
  name TEXT PRIMARY KEY,                 -- projects/{p}/locations/{r}/functions/{f}
  spec TEXT NOT NULL                     -- the FunctionSpec in JSON
);
)sql",
    R"sql(
-- The message's ordering key, kept only on subscriptions with message ordering (empty elsewhere).
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT NOT NULL DEFAULT '';
CREATE INDEX deliveries_by_key ON deliveries(sub_id, ordering_key) WHERE ordering_key != '';
-- Acknowledged messages kept for seek (retainAckedMessages): each row holds a reference to its message.
CREATE TABLE acked(
  sub_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  publish_time INTEGER NOT NULL,
  PRIMARY KEY(sub_id, msg_id)
) WITHOUT ROWID;
-- A snapshot: the messages its subscription had not acknowledged when it was taken (each row a reference).
CREATE TABLE snapshots(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  created INTEGER NOT NULL,              -- unix ms
  expire INTEGER NOT NULL,               -- unix ms
  labels TEXT NOT NULL                   -- JSON object
);
CREATE TABLE snapshot_messages(
  snap_id INTEGER NOT NULL,
  msg_id INTEGER NOT NULL,
  publish_time INTEGER NOT NULL,
  PRIMARY KEY(snap_id, msg_id)
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE schedules(
  name TEXT PRIMARY KEY,                 -- projects/{p}/locations/{r}/jobs/{j}
  spec TEXT NOT NULL,                    -- the ScheduleSpec in JSON
  next_fire INTEGER NOT NULL,            -- unix ms of the next tick, -1 for none
  last_fired INTEGER NOT NULL DEFAULT 0, -- unix ms of the tick last fired (its scheduled time)
  paused INTEGER NOT NULL DEFAULT 0
);
)sql",
    R"sql(
CREATE TABLE buckets(
  name TEXT PRIMARY KEY,
  project TEXT NOT NULL,
  path TEXT NOT NULL
);
)sql",
    R"sql(
ALTER TABLE buckets ADD COLUMN versioning INTEGER NOT NULL DEFAULT 0;
-- Each object as its bucket's last event told it (the JSON API resource), written with that event; the row with
-- name '' holds the directory that was scanned.
CREATE TABLE bucket_objects(
  bucket TEXT NOT NULL,
  name TEXT NOT NULL,
  object TEXT NOT NULL,
  PRIMARY KEY(bucket, name)
) WITHOUT ROWID;
)sql",
};

constexpr int kMaxJobsPerCommit = 256;


MultiRowSql const& InsertMessagesSql() {
  static MultiRowSql const sql("INSERT INTO messages(id, topic_id, publish_time, data, attributes, ordering_key, refs) "
                               "VALUES ", "(?, ?, ?, ?, ?, ?, ?)", ", ", "");
  return sql;
}
MultiRowSql const& InsertDeliveriesSql() {
  static MultiRowSql const sql("INSERT INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) "
                               "VALUES ", "(?, ?, ?, ?, ?)", ", ", "");
  return sql;
}
// ?1 = sub_id, ?2 = lease deadline, then one msg_id per row; attempts go up by one.
MultiRowSql const& LeaseSql() {
  static MultiRowSql const sql("UPDATE deliveries SET attempts = attempts + 1, leased = 1, visible_at = ?2 "
                               "WHERE sub_id = ?1 AND msg_id IN (", "?", ", ", ")");
  return sql;
}
// ?1 = sub_id, then one msg_id per row.
MultiRowSql const& AckSql() {
  static MultiRowSql const sql("DELETE FROM deliveries WHERE sub_id = ?1 AND msg_id IN (", "?", ", ",
                               ") RETURNING msg_id");
  return sql;
}

struct SubRow {
  int64_t id = 0;
  Subscription spec;
};

// A subscription as a publish sees it: which messages it takes, and whether it keeps their ordering keys.
struct FanoutTarget {
  int64_t sub_id = 0;
  Filter filter;
  bool ordered = false;
};

StatusOr<Json> ParseJson(std::string const& text) {
  try {
    return Json::parse(text);
  } catch (std::exception const& e) {
    return InternalError(std::string("corrupt stored json: ") + e.what());
  }
}

StatusOr<Subscription> DecodeSub(std::string const& text) {
  FERRY_ASSIGN_OR_RETURN(auto json, ParseJson(text));
  return SubscriptionFromJson(json);
}

StatusOr<Topic> DecodeTopic(std::string const& text) {
  FERRY_ASSIGN_OR_RETURN(auto json, ParseJson(text));
  return TopicFromJson(json);
}

std::string EncodeAttributes(Attributes const& attrs) {
  if (attrs.empty()) return "{}";
  Json j = Json::object();
  for (auto const& [k, v] : attrs) j[k] = v;
  return SafeDump(j);
}

StatusOr<Attributes> DecodeAttributes(std::string const& text) {
  if (text == "{}") return Attributes{};
  FERRY_ASSIGN_OR_RETURN(auto json, ParseJson(text));
  Attributes out;
  for (auto const& [k, v] : json.items()) out.emplace(k, v.get<std::string>());
  return out;
}

// Steps a statement to its end, collecting its first column.
StatusOr<std::vector<int64_t>> FirstColumn(SqliteStmt& st) {
  std::vector<int64_t> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(st.Int(0));
  }
  st.Reset();
  return out;
}

class SqliteMessageStore : public MessageStore {
 public:
  // wal_fd: an open descriptor of the WAL file to fdatasync before answering, or -1 when SQLite syncs itself
  // (synchronous=FULL) or nothing is synced.
  SqliteMessageStore(std::unique_ptr<SqliteDb> writer, std::unique_ptr<SqliteDb> reader, int64_t last_message_id,
                     int wal_fd)
      : writer_(std::move(writer)),
        reader_(std::move(reader)),
        last_message_id_(last_message_id),
        committed_message_id_(last_message_id),
        wal_fd_(wal_fd),
        thread_([this] { WriterLoop(); }) {
    if (wal_fd_ >= 0) sync_thread_ = std::thread([this] { SyncLoop(); });
  }

  ~SqliteMessageStore() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (sync_thread_.joinable()) {
      {
        std::lock_guard lock(sync_mu_);
        sync_stop_ = true;
      }
      sync_cv_.notify_one();
      sync_thread_.join();
    }
    if (wal_fd_ >= 0) close(wal_fd_);
  }

  // ---- topics ----

  Status CreateTopic(Topic const& topic) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto existing, FindTopicId(db, topic.name));
      if (existing) return AlreadyExistsError("Topic already exists");
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO topics(name, spec) VALUES(?1, ?2)"));
      return st->Bind(1, topic.name).Bind(2, SafeDump(TopicToJson(topic))).Exec();
    });
  }

  StatusOr<Topic> GetTopic(std::string const& name) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT spec FROM topics WHERE name = ?1"));
    st->Bind(1, name);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return NotFoundError("Topic not found");
    return DecodeTopic(st->Text(0));
  }

  Status UpdateTopic(Topic const& topic) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE topics SET spec = ?2 WHERE name = ?1"));
      FERRY_RETURN_IF_ERROR(st->Bind(1, topic.name).Bind(2, SafeDump(TopicToJson(topic))).Exec());
      if (db.Changes() == 0) return NotFoundError("Topic not found");
      return OkStatus();
    });
  }

  Status DeleteTopic(std::string const& name) override {
    return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, name));
      if (!id) return NotFoundError("Topic not found");
      // Detach its subscriptions, as Pub/Sub does: they keep their backlog and show "_deleted-topic_".
      FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT id, spec FROM subscriptions WHERE topic_id = ?1"));
      sel->Bind(1, *id);
      std::vector<std::pair<int64_t, Subscription>> subs;
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
        if (!row) break;
        FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(sel->Text(1)));
        subs.emplace_back(sel->Int(0), std::move(spec));
      }
      sel->Reset();
      for (auto& [sub_id, spec] : subs) {
        spec.topic = kDeletedTopic;
        FERRY_ASSIGN_OR_RETURN(auto up,
                               db.Prepare("UPDATE subscriptions SET topic_id = NULL, spec = ?2 WHERE id = ?1"));
        FERRY_RETURN_IF_ERROR(up->Bind(1, sub_id).Bind(2, SafeDump(SubscriptionToJson(spec))).Exec());
      }
      FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM topics WHERE id = ?1"));
      return del->Bind(1, *id).Exec();
    }));
  }

  StatusOr<std::vector<Topic>> ListTopics(std::string const& project, Page page) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(
        auto st, reader_->Prepare("SELECT spec FROM topics WHERE name > ?1 AND name >= ?2 AND name < ?3 "
                                   "ORDER BY name LIMIT ?4"));
    std::string prefix = "projects/" + project + "/topics/";
    st->Bind(1, page.after).Bind(2, prefix).Bind(3, prefix + "\xff").Bind(4, page.limit);
    std::vector<Topic> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      FERRY_ASSIGN_OR_RETURN(auto topic, DecodeTopic(st->Text(0)));
      out.push_back(std::move(topic));
    }
    return out;
  }

  StatusOr<std::vector<std::string>> ListTopicSubscriptions(std::string const& topic, Page page) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto find, reader_->Prepare("SELECT id FROM topics WHERE name = ?1"));
    find->Bind(1, topic);
    FERRY_ASSIGN_OR_RETURN(bool found, find->Step());
    if (!found) return NotFoundError("Topic not found");
    int64_t topic_id = find->Int(0);
    find->Reset();
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name FROM subscriptions WHERE topic_id = ?1 AND "
                                                      "name > ?2 ORDER BY name LIMIT ?3"));
    st->Bind(1, topic_id).Bind(2, page.after).Bind(3, page.limit);
    std::vector<std::string> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back(st->Text(0));
    }
    return out;
  }

  // ---- subscriptions ----

  Status CreateSubscription(Subscription const& sub) override {
    return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, sub.topic));
      if (!topic_id) return NotFoundError("Subscription topic does not exist");
      FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, sub.name));
      if (existing) return AlreadyExistsError("Subscription already exists");
      FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
      FERRY_ASSIGN_OR_RETURN(auto st,
                             db.Prepare("INSERT INTO subscriptions(name, topic_id, spec) VALUES(?1, ?2, ?3)"));
      return st->Bind(1, sub.name).Bind(2, *topic_id).Bind(3, SafeDump(SubscriptionToJson(sub))).Exec();
    }));
  }

  StatusOr<Subscription> GetSubscription(std::string const& name) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT spec FROM subscriptions WHERE name = ?1"));
    st->Bind(1, name);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return NotFoundError("Subscription does not exist");
    return DecodeSub(st->Text(0));
  }

  Status UpdateSubscription(Subscription const& sub) override {
    return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, sub.name));
      if (!existing) return NotFoundError("Subscription does not exist");
      FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE subscriptions SET spec = ?2 WHERE id = ?1"));
      return st->Bind(1, existing->id).Bind(2, SafeDump(SubscriptionToJson(sub))).Exec();
    }));
  }

  Status DeleteSubscription(std::string const& name) override {
    return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, name));
      if (!existing) return NotFoundError("Subscription does not exist");
      FERRY_RETURN_IF_ERROR(DropDeliveries(db, existing->id, std::numeric_limits<int64_t>::max()));
      FERRY_RETURN_IF_ERROR(DropAcked(db, existing->id, std::numeric_limits<int64_t>::max()));
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM subscriptions WHERE id = ?1"));
      return st->Bind(1, existing->id).Exec();
    }));
  }

  StatusOr<std::vector<Subscription>> ListSubscriptions(std::string const& project, Page page) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT spec FROM subscriptions WHERE name > ?1 AND name "
                                                      ">= ?2 AND name < ?3 ORDER BY name LIMIT ?4"));
    std::string prefix = "projects/" + project + "/subscriptions/";
    st->Bind(1, page.after).Bind(2, prefix).Bind(3, prefix + "\xff").Bind(4, page.limit);
    std::vector<Subscription> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      FERRY_ASSIGN_OR_RETURN(auto sub, DecodeSub(st->Text(0)));
      out.push_back(std::move(sub));
    }
    return out;
  }

  // ---- data path ----

  StatusOr<std::vector<std::string>> Publish(std::string const& topic, std::vector<PubsubMessage> const& messages,
                                             int64_t now_ms) override {
    std::vector<std::string> ids;
    auto st = Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
      if (!topic_id) return NotFoundError("Topic not found");
      FERRY_ASSIGN_OR_RETURN(auto assigned, InsertMessages(db, *topic_id, messages, now_ms));
      published_topics_.push_back(topic);
      ids.clear();
      ids.reserve(assigned.size());
      for (int64_t id : assigned) ids.push_back(std::to_string(id));
      return OkStatus();
    });
    if (!st.ok()) return st;
    return ids;
  }

  StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms, int ack_deadline_seconds,
                              int64_t max_bytes) override {
    LeaseResult result;
    auto st = Write([&](SqliteDb& db) -> Status {
      result = {};
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      auto const& spec = sub->spec;
      int deadline_seconds = ack_deadline_seconds > 0 ? ack_deadline_seconds : spec.ack_deadline_seconds;
      int64_t lease_until = now_ms + int64_t{deadline_seconds} * 1000;
      struct Candidate {
        int64_t msg_id, visible_at;
        int attempts;
        bool leased;
        PubsubMessage message;
      };
      std::vector<int64_t> leased;
      // With message ordering, a key is held while any of its messages is leased or waiting out a backoff, and
      // its messages go out in publish order: one outstanding batch per key.
      bool const ordered = spec.enable_message_ordering;
      // Keys whose earlier message this lease just put back to wait out a backoff (the query above sees that only
      // from its next round).
      std::set<std::string> held_keys;
      int64_t bytes = 0;
      bool full = false;  // the byte budget is spent
      while (!full && static_cast<int>(result.messages.size()) < max) {
        FERRY_ASSIGN_OR_RETURN(
            auto sel, db.Prepare(ordered ? "SELECT d.msg_id, d.visible_at, d.attempts, d.leased, m.publish_time, "
                                           "m.data, m.attributes, m.ordering_key "
                                           "FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                                           "WHERE d.sub_id = ?1 AND d.visible_at <= ?2 AND (d.ordering_key = '' OR "
                                           "d.ordering_key NOT IN (SELECT ordering_key FROM deliveries WHERE "
                                           "sub_id = ?1 AND ordering_key != '' AND visible_at > ?2)) "
                                           "ORDER BY d.msg_id LIMIT ?3"
                                         : "SELECT d.msg_id, d.visible_at, d.attempts, d.leased, m.publish_time, "
                                           "m.data, m.attributes, m.ordering_key "
                                           "FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                                           "WHERE d.sub_id = ?1 AND d.visible_at <= ?2 "
                                           "ORDER BY d.visible_at, d.msg_id LIMIT ?3"));
        sel->Bind(1, sub->id).Bind(2, now_ms).Bind(3, max - static_cast<int>(result.messages.size()));
        std::vector<Candidate> candidates;
        while (true) {
          FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
          if (!row) break;
          Candidate c{sel->Int(0), sel->Int(1), static_cast<int>(sel->Int(2)), sel->Int(3) != 0, {}};
          c.message.message_id = std::to_string(c.msg_id);
          c.message.publish_time_ms = sel->Int(4);
          c.message.data = sel->Text(5);
          FERRY_ASSIGN_OR_RETURN(c.message.attributes, DecodeAttributes(sel->Text(6)));
          c.message.ordering_key = sel->Text(7);
          candidates.push_back(std::move(c));
        }
        sel->Reset();
        if (candidates.empty()) break;
        for (auto& c : candidates) {
          bool const keyed = ordered && !c.message.ordering_key.empty();
          if (keyed && held_keys.count(c.message.ordering_key) > 0) continue;
          if (c.leased) {
            // The last lease expired: that delivery failed.
            if (spec.dead_letter_policy && c.attempts >= spec.dead_letter_policy->max_delivery_attempts) {
              FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, *sub, c.msg_id, c.attempts, now_ms));
              if (moved) {
                ++result.dead_lettered;
                continue;
              }
            }
            ++result.expired;
            if (spec.retry_policy) {
              int64_t retry_at = c.visible_at + RetryDelayMillis(*spec.retry_policy, c.attempts);
              if (retry_at > now_ms) {
                FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, c.msg_id, retry_at, false));
                if (keyed) held_keys.insert(c.message.ordering_key);
                continue;
              }
            }
          }
          int64_t size = static_cast<int64_t>(c.message.data.size() + c.message.ordering_key.size());
          for (auto const& [k, v] : c.message.attributes) size += static_cast<int64_t>(k.size() + v.size());
          if (!result.messages.empty() && bytes + size > max_bytes) {
            full = true;  // it and the rest stay as they are: not leased, no attempt counted
            break;
          }
          bytes += size;
          int attempt = c.attempts + 1;
          leased.push_back(c.msg_id);
          ReceivedMessage r;
          r.message = std::move(c.message);
          r.ack_id = EncodeAckId({sub->id, c.msg_id, attempt});
          r.attempt = attempt;
          if (spec.dead_letter_policy) r.delivery_attempt = attempt;
          result.messages.push_back(std::move(r));
        }
        FERRY_RETURN_IF_ERROR(MarkLeased(db, sub->id, leased, lease_until));
        leased.clear();
      }
      return OkStatus();
    }, /*durable=*/false);
    if (!st.ok()) return st;
    return result;
  }

  StatusOr<AckResult> Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                  int64_t now_ms) override {
    FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAll(ack_ids));
    AckResult result;
    auto st = Write([&](SqliteDb& db) -> Status {
      result = {};
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      std::vector<int64_t> msg_ids;
      for (std::size_t i = 0; i < refs.size(); ++i) {
        auto const& ref = refs[i];
        if (sub->spec.enable_exactly_once_delivery) {
          // Only the current, unexpired lease may acknowledge: then an acked message is never delivered again.
          FERRY_ASSIGN_OR_RETURN(bool current, IsCurrentLease(db, sub->id, ref, now_ms));
          if (!current) {
            result.invalid_ack_ids.push_back(ack_ids[i]);
            continue;
          }
        } else if (sub->spec.enable_message_ordering) {
          // With ordering, a nack sends the later messages of its key again: their acks from before are void.
          FERRY_ASSIGN_OR_RETURN(bool current,
                                 IsCurrentLease(db, sub->id, ref, std::numeric_limits<int64_t>::min()));
          if (!current) continue;
        } else if (ref.subscription_id != sub->id) {
          continue;
        }
        // Elsewhere any attempt's ack id acknowledges the message: delivery is at-least-once, and a late ack after
        // a redelivery still means the work was done.
        msg_ids.push_back(ref.message_id);
      }
      FERRY_ASSIGN_OR_RETURN(auto removed, RemoveDeliveries(db, *sub, msg_ids));
      result.acked = static_cast<int>(removed);
      return OkStatus();
    });
    if (!st.ok()) return st;
    return result;
  }

  StatusOr<ModifyResult> ModifyAckDeadline(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                           int seconds, int64_t now_ms) override {
    FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAll(ack_ids));
    return Modify(subscription, refs, seconds, nullptr, now_ms);
  }

  StatusOr<int> ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids,
                             int64_t now_ms) override {
    FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAll(ack_ids));
    int returned = 0;
    auto st = Write([&](SqliteDb& db) -> Status {
      returned = 0;
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      // The lease's own attempt, still held: the lease is current, so taking its attempt back is exact.
      FERRY_ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE deliveries SET leased = 0, visible_at = ?4, "
                                                  "attempts = attempts - 1 WHERE sub_id = ?1 AND msg_id = ?2 AND "
                                                  "attempts = ?3 AND leased = 1"));
      for (auto const& ref : refs) {
        if (ref.subscription_id != sub->id) continue;
        FERRY_RETURN_IF_ERROR(up->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, ref.attempt).Bind(4, now_ms).Exec());
        returned += db.Changes();
      }
      return OkStatus();
    }, /*durable=*/false);  // as a lease is: a crash before the next commit leaves it leased until its deadline
    if (!st.ok()) return st;
    return returned;
  }

  StatusOr<ModifyResult> Nack(std::string const& subscription, std::string const& ack_id, std::string const& error,
                              int64_t now_ms) override {
    FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAll({ack_id}));
    return Modify(subscription, refs, 0, &error, now_ms);
  }

  // Sets the current leases of `refs` to `seconds` from now, or nacks them (0), keeping `error` when given.
  StatusOr<ModifyResult> Modify(std::string const& subscription, std::vector<AckRef> const& refs, int seconds,
                                std::string const* error, int64_t now_ms) {
    ModifyResult result;
    auto st = Write([&](SqliteDb& db) -> Status {
      result = {};
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      auto const& spec = sub->spec;
      for (auto const& ref : refs) {
        // Only the current lease may be changed: a stale ack id must not touch a redelivered message. Exactly-once
        // subscriptions also refuse an expired lease, and say so.
        bool const exactly_once = spec.enable_exactly_once_delivery;
        int64_t const held_past = exactly_once ? now_ms : std::numeric_limits<int64_t>::min();
        FERRY_ASSIGN_OR_RETURN(bool current, IsCurrentLease(db, sub->id, ref, held_past));
        if (!current) {
          if (exactly_once) result.invalid_ack_ids.push_back(EncodeAckId(ref));
          continue;
        }
        if (seconds > 0) {
          FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, now_ms + int64_t{seconds} * 1000, true));
          continue;
        }
        ++result.nacked;
        if (error != nullptr) {
          FERRY_ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE deliveries SET last_error = ?3 WHERE sub_id = ?1 AND "
                                                      "msg_id = ?2"));
          FERRY_RETURN_IF_ERROR(up->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, *error).Exec());
        }
        if (spec.dead_letter_policy && ref.attempt >= spec.dead_letter_policy->max_delivery_attempts) {
          FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, *sub, ref.message_id, ref.attempt, now_ms));
          if (moved) {
            ++result.dead_lettered;
            continue;
          }
        }
        int64_t delay = spec.retry_policy ? RetryDelayMillis(*spec.retry_policy, ref.attempt) : 0;
        FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, now_ms + delay, false));
        if (spec.enable_message_ordering) {
          // A nack holds its key back: the later messages of the key that are out now come again after it.
          FERRY_ASSIGN_OR_RETURN(auto later, db.Prepare("UPDATE deliveries SET leased = 0, visible_at = ?3 WHERE "
                                                         "sub_id = ?1 AND msg_id > ?2 AND leased = 1 AND "
                                                         "ordering_key != '' AND ordering_key = (SELECT ordering_key "
                                                         "FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2)"));
          FERRY_RETURN_IF_ERROR(later->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, now_ms + delay).Exec());
        }
      }
      return OkStatus();
    });
    if (!st.ok()) return st;
    return result;
  }

  StatusOr<MaintenanceResult> Maintain(int64_t now_ms, bool apply_retention) override {
    MaintenanceResult result;
    auto st = Write([&](SqliteDb& db) -> Status {
      result = {};
      FERRY_ASSIGN_OR_RETURN(auto subs, db.Prepare("SELECT id, spec FROM subscriptions"));
      std::vector<SubRow> rows;
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool row, subs->Step());
        if (!row) break;
        FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(subs->Text(1)));
        rows.push_back({subs->Int(0), std::move(spec)});
      }
      subs->Reset();
      for (auto const& sub : rows) {
        if (sub.spec.dead_letter_policy) {
          FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT msg_id, attempts FROM deliveries WHERE sub_id = ?1 "
                                                       "AND visible_at <= ?2 AND leased = 1 AND attempts >= ?3"));
          sel->Bind(1, sub.id).Bind(2, now_ms).Bind(3, sub.spec.dead_letter_policy->max_delivery_attempts);
          std::vector<std::pair<int64_t, int>> exhausted;
          while (true) {
            FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
            if (!row) break;
            exhausted.emplace_back(sel->Int(0), static_cast<int>(sel->Int(1)));
          }
          sel->Reset();
          int moved_count = 0;
          for (auto const& [msg_id, attempts] : exhausted) {
            FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, sub, msg_id, attempts, now_ms));
            moved_count += moved ? 1 : 0;
          }
          if (moved_count > 0) result.dead_lettered.emplace_back(sub.spec.name, moved_count);
        }
        if (!apply_retention) continue;
        FERRY_ASSIGN_OR_RETURN(int64_t dropped,
                               DropDeliveries(db, sub.id, now_ms - sub.spec.message_retention_ms));
        result.dropped_by_retention += dropped;
        FERRY_RETURN_IF_ERROR(DropAcked(db, sub.id, now_ms - sub.spec.message_retention_ms));
      }
      if (apply_retention) {
        FERRY_ASSIGN_OR_RETURN(auto expired, db.Prepare("SELECT id FROM snapshots WHERE expire <= ?1"));
        expired->Bind(1, now_ms);
        FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*expired));
        for (int64_t id : ids) FERRY_RETURN_IF_ERROR(DropSnapshot(db, id));
      }
      return OkStatus();
    });
    if (!st.ok()) return st;
    return result;
  }

  StatusOr<std::vector<SubscriptionStats>> Stats() override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT s.name, COUNT(d.msg_id), MIN(d.publish_time) FROM "
                                                      "subscriptions s LEFT JOIN deliveries d ON d.sub_id = s.id "
                                                      "GROUP BY s.id ORDER BY s.name"));
    std::vector<SubscriptionStats> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({st->Text(0), st->Int(1), st->IsNull(2) ? 0 : st->Int(2)});
    }
    return out;
  }
  StatusOr<std::vector<Subscription>> ListPushSubscriptions() override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT spec FROM subscriptions WHERE spec LIKE "
                                                      "'%\"pushEndpoint\"%' ORDER BY name"));
    std::vector<Subscription> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      FERRY_ASSIGN_OR_RETURN(auto sub, DecodeSub(st->Text(0)));
      if (!sub.push_config.push_endpoint.empty()) out.push_back(std::move(sub));
    }
    return out;
  }

  StatusOr<std::vector<BucketRecord>> ListBuckets() override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, project, path, versioning FROM buckets ORDER BY "
                                                      "name"));
    std::vector<BucketRecord> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({st->Text(0), st->Text(1), st->Text(2), st->Int(3) != 0});
    }
    return out;
  }

  StatusOr<std::map<std::string, std::string>> BucketObjects(std::string const& bucket) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, object FROM bucket_objects WHERE bucket = ?1"));
    st->Bind(1, bucket);
    std::map<std::string, std::string> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.emplace(st->Text(0), st->Text(1));
    }
    return out;
  }

  Status RecordBucketEvents(std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                            std::string const& topic, std::vector<PubsubMessage> const& events,
                            int64_t now_ms) override {
    return Write([&](SqliteDb& db) -> Status {
      if (!events.empty()) {
        FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
        if (!topic_id) return NotFoundError("Topic " + topic + " does not exist");
        FERRY_ASSIGN_OR_RETURN(auto ids, InsertMessages(db, *topic_id, events, now_ms));
        (void)ids;
        published_topics_.push_back(topic);
      }
      for (auto const& c : changes) {
        if (c.object) {
          FERRY_ASSIGN_OR_RETURN(auto put, db.Prepare("INSERT OR REPLACE INTO bucket_objects(bucket, name, object) "
                                                      "VALUES(?1, ?2, ?3)"));
          FERRY_RETURN_IF_ERROR(put->Bind(1, bucket).Bind(2, c.name).Bind(3, *c.object).Exec());
        } else {
          FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM bucket_objects WHERE bucket = ?1 AND name = ?2"));
          FERRY_RETURN_IF_ERROR(del->Bind(1, bucket).Bind(2, c.name).Exec());
        }
      }
      return OkStatus();
    });
  }

  // ---- schedules ----

  StatusOr<std::vector<ScheduleRecord>> ListSchedules() override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, spec, next_fire, last_fired, paused FROM "
                                                      "schedules ORDER BY name"));
    std::vector<ScheduleRecord> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({st->Text(0), st->Text(1), st->Int(2), st->Int(3), st->Int(4) != 0});
    }
    return out;
  }

  StatusOr<bool> FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                              std::string const& topic, PubsubMessage const* message, int64_t now_ms) override {
    bool fired = false;
    auto st = Write([&](SqliteDb& db) -> Status {
      fired = false;
      FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT last_fired FROM schedules WHERE name = ?1"));
      sel->Bind(1, name);
      FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
      if (!row) return NotFoundError("Schedule " + name + " does not exist");
      int64_t last = sel->Int(0);
      sel->Reset();
      if (last >= tick_ms) return OkStatus();  // fired already (by this node before a restart, or another)
      if (message != nullptr) {
        FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
        if (!topic_id) return NotFoundError("Topic " + topic + " does not exist");
        FERRY_ASSIGN_OR_RETURN(auto ids, InsertMessages(db, *topic_id, {*message}, now_ms));
        (void)ids;
        published_topics_.push_back(topic);
      }
      FERRY_ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE schedules SET last_fired = ?2, next_fire = ?3 WHERE "
                                                  "name = ?1"));
      FERRY_RETURN_IF_ERROR(up->Bind(1, name).Bind(2, tick_ms).Bind(3, next_fire_ms).Exec());
      fired = true;
      return OkStatus();
    });
    if (!st.ok()) return st;
    return fired;
  }

  Status SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE schedules SET paused = ?2, next_fire = ?3 WHERE name = ?1"));
      FERRY_RETURN_IF_ERROR(st->Bind(1, name).Bind(2, paused ? 1 : 0).Bind(3, next_fire_ms).Exec());
      if (db.Changes() == 0) return NotFoundError("Schedule " + name + " does not exist");
      return OkStatus();
    });
  }

  // ---- snapshots and seek ----

  StatusOr<Snapshot> CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                    int64_t now_ms) override {
    Snapshot created = snapshot;
    auto st = Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      if (sub->spec.topic == kDeletedTopic) return FailedPreconditionError("The subscription's topic was deleted");
      FERRY_ASSIGN_OR_RETURN(auto exists, db.Prepare("SELECT 1 FROM snapshots WHERE name = ?1"));
      exists->Bind(1, snapshot.name);
      FERRY_ASSIGN_OR_RETURN(bool found, exists->Step());
      exists->Reset();
      if (found) return AlreadyExistsError("Snapshot already exists");
      // It lives until its oldest message is 7 days old, as in Pub/Sub.
      FERRY_ASSIGN_OR_RETURN(auto oldest, db.Prepare("SELECT MIN(publish_time) FROM deliveries WHERE sub_id = ?1"));
      oldest->Bind(1, sub->id);
      FERRY_ASSIGN_OR_RETURN(bool row, oldest->Step());
      int64_t from = row && !oldest->IsNull(0) ? std::min(oldest->Int(0), now_ms) : now_ms;
      oldest->Reset();
      created.topic = sub->spec.topic;
      created.expire_time_ms = from + kSnapshotLifetimeMillis;
      FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare("INSERT INTO snapshots(name, topic, created, expire, labels) "
                                                  "VALUES(?1, ?2, ?3, ?4, ?5)"));
      FERRY_RETURN_IF_ERROR(ins->Bind(1, created.name)
                                .Bind(2, created.topic)
                                .Bind(3, now_ms)
                                .Bind(4, created.expire_time_ms)
                                .Bind(5, EncodeAttributes(created.labels))
                                .Exec());
      int64_t snap_id = db.LastInsertRowId();
      FERRY_ASSIGN_OR_RETURN(auto copy, db.Prepare("INSERT INTO snapshot_messages(snap_id, msg_id, publish_time) "
                                                   "SELECT ?2, msg_id, publish_time FROM deliveries WHERE sub_id = ?1"));
      FERRY_RETURN_IF_ERROR(copy->Bind(1, sub->id).Bind(2, snap_id).Exec());
      FERRY_ASSIGN_OR_RETURN(auto hold, db.Prepare("UPDATE messages SET refs = refs + 1 WHERE id IN (SELECT msg_id "
                                                   "FROM snapshot_messages WHERE snap_id = ?1)"));
      return hold->Bind(1, snap_id).Exec();
    });
    if (!st.ok()) return st;
    return created;
  }

  StatusOr<Snapshot> GetSnapshot(std::string const& name) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, topic, expire, labels FROM snapshots "
                                                      "WHERE name = ?1"));
    st->Bind(1, name);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return NotFoundError("Snapshot does not exist");
    return DecodeSnapshot(*st);
  }

  Status UpdateSnapshot(Snapshot const& snapshot) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE snapshots SET expire = ?2, labels = ?3 WHERE name = ?1"));
      FERRY_RETURN_IF_ERROR(st->Bind(1, snapshot.name)
                                .Bind(2, snapshot.expire_time_ms)
                                .Bind(3, EncodeAttributes(snapshot.labels))
                                .Exec());
      if (db.Changes() == 0) return NotFoundError("Snapshot does not exist");
      return OkStatus();
    });
  }

  Status DeleteSnapshot(std::string const& name) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id FROM snapshots WHERE name = ?1"));
      st->Bind(1, name);
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) return NotFoundError("Snapshot does not exist");
      int64_t id = st->Int(0);
      st->Reset();
      return DropSnapshot(db, id);
    });
  }

  StatusOr<std::vector<Snapshot>> ListSnapshots(std::string const& project, Page page) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, topic, expire, labels FROM snapshots WHERE "
                                                      "name > ?1 AND name >= ?2 AND name < ?3 ORDER BY name LIMIT ?4"));
    std::string prefix = "projects/" + project + "/snapshots/";
    st->Bind(1, page.after).Bind(2, prefix).Bind(3, prefix + "\xff").Bind(4, page.limit);
    std::vector<Snapshot> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      FERRY_ASSIGN_OR_RETURN(auto s, DecodeSnapshot(*st));
      out.push_back(std::move(s));
    }
    return out;
  }

  StatusOr<std::vector<std::string>> ListTopicSnapshots(std::string const& topic, Page page) override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto find, reader_->Prepare("SELECT 1 FROM topics WHERE name = ?1"));
    find->Bind(1, topic);
    FERRY_ASSIGN_OR_RETURN(bool found, find->Step());
    find->Reset();
    if (!found) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name FROM snapshots WHERE topic = ?1 AND name > ?2 "
                                                      "ORDER BY name LIMIT ?3"));
    st->Bind(1, topic).Bind(2, page.after).Bind(3, page.limit);
    std::vector<std::string> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back(st->Text(0));
    }
    return out;
  }

  Status SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      return Seek(db, *sub, SeekToTimeSql(), time_ms, 0, now_ms);
    });
  }

  Status SeekToSnapshot(std::string const& subscription, std::string const& snapshot, int64_t now_ms) override {
    return Write([&](SqliteDb& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
      if (!sub) return NotFoundError("Subscription does not exist");
      FERRY_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT id, topic, created FROM snapshots WHERE name = ?1"));
      find->Bind(1, snapshot);
      FERRY_ASSIGN_OR_RETURN(bool row, find->Step());
      if (!row) return NotFoundError("Snapshot does not exist");
      int64_t snap_id = find->Int(0), created = find->Int(2);
      std::string topic = find->Text(1);
      find->Reset();
      if (topic != sub->spec.topic) {
        return FailedPreconditionError("The snapshot's topic (" + topic + ") is not the subscription's topic (" +
                                       sub->spec.topic + ")");
      }
      // Snapshot messages this subscription no longer holds at all come back as new copies.
      FERRY_ASSIGN_OR_RETURN(auto missing, db.Prepare("SELECT s.msg_id, s.publish_time, m.ordering_key FROM "
                                                      "snapshot_messages s JOIN messages m ON m.id = s.msg_id "
                                                      "WHERE s.snap_id = ?2 AND s.msg_id NOT IN (SELECT msg_id FROM "
                                                      "deliveries WHERE sub_id = ?1 UNION SELECT msg_id FROM acked "
                                                      "WHERE sub_id = ?1)"));
      missing->Bind(1, sub->id).Bind(2, snap_id);
      struct Row {
        int64_t msg_id, publish_time;
        std::string key;
      };
      std::vector<Row> rows;
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool more, missing->Step());
        if (!more) break;
        rows.push_back({missing->Int(0), missing->Int(1), missing->Text(2)});
      }
      missing->Reset();
      for (auto const& r : rows) {
        FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare("INSERT INTO deliveries(sub_id, msg_id, publish_time, visible_at, "
                                                    "ordering_key) VALUES(?1, ?2, ?3, ?4, ?5)"));
        FERRY_RETURN_IF_ERROR(ins->Bind(1, sub->id)
                                  .Bind(2, r.msg_id)
                                  .Bind(3, r.publish_time)
                                  .Bind(4, now_ms)
                                  .Bind(5, sub->spec.enable_message_ordering ? r.key : std::string())
                                  .Exec());
        FERRY_ASSIGN_OR_RETURN(auto hold, db.Prepare("UPDATE messages SET refs = refs + 1 WHERE id = ?1"));
        FERRY_RETURN_IF_ERROR(hold->Bind(1, r.msg_id).Exec());
      }
      return Seek(db, *sub, SeekToSnapshotSql(), created, snap_id, now_ms);
    });
  }

  void SetPublishListener(std::function<void(std::string const& topic)> listener) override {
    std::lock_guard lock(listener_mu_);
    publish_listener_ = std::move(listener);
  }

  // ---- functions ----

  Status ApplyDeployment(Deployment const& d) override {
    return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
      for (auto const& topic : d.create_topics) {
        FERRY_ASSIGN_OR_RETURN(auto existing, FindTopicId(db, topic.name));
        if (existing) return AlreadyExistsError("Topic already exists: " + topic.name);
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO topics(name, spec) VALUES(?1, ?2)"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, topic.name).Bind(2, SafeDump(TopicToJson(topic))).Exec());
      }
      for (auto const& name : d.delete_subscriptions) {
        FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, name));
        if (!existing) return NotFoundError("Subscription does not exist: " + name);
        FERRY_RETURN_IF_ERROR(DropDeliveries(db, existing->id, std::numeric_limits<int64_t>::max()));
        FERRY_RETURN_IF_ERROR(DropAcked(db, existing->id, std::numeric_limits<int64_t>::max()));
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM subscriptions WHERE id = ?1"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, existing->id).Exec());
      }
      for (auto const& sub : d.create_subscriptions) {
        FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, sub.topic));
        if (!topic_id) return NotFoundError("Subscription topic does not exist: " + sub.topic);
        FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, sub.name));
        if (existing) return AlreadyExistsError("Subscription already exists: " + sub.name);
        FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
        FERRY_ASSIGN_OR_RETURN(auto st,
                               db.Prepare("INSERT INTO subscriptions(name, topic_id, spec) VALUES(?1, ?2, ?3)"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, sub.name).Bind(2, *topic_id).Bind(3, SafeDump(SubscriptionToJson(sub))).Exec());
      }
      for (auto const& sub : d.update_subscriptions) {
        FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, sub.name));
        if (!existing) return NotFoundError("Subscription does not exist: " + sub.name);
        FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE subscriptions SET spec = ?2 WHERE id = ?1"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, existing->id).Bind(2, SafeDump(SubscriptionToJson(sub))).Exec());
      }
      for (auto const& name : d.delete_functions) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM functions WHERE name = ?1"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, name).Exec());
      }
      for (auto const& name : d.delete_buckets) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM buckets WHERE name = ?1"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, name).Exec());
        FERRY_ASSIGN_OR_RETURN(auto objects, db.Prepare("DELETE FROM bucket_objects WHERE bucket = ?1"));
        FERRY_RETURN_IF_ERROR(objects->Bind(1, name).Exec());
      }
      for (auto const& b : d.put_buckets) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO buckets(name, project, path, versioning) VALUES(?1, "
                                                    "?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET project = "
                                                    "excluded.project, path = excluded.path, versioning = "
                                                    "excluded.versioning"));
        FERRY_RETURN_IF_ERROR(
            st->Bind(1, b.name).Bind(2, b.project).Bind(3, b.path).Bind(4, b.versioning ? 1 : 0).Exec());
      }
      for (auto const& name : d.delete_schedules) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM schedules WHERE name = ?1"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, name).Exec());
      }
      for (auto const& s : d.put_schedules) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO schedules(name, spec, next_fire) VALUES(?1, ?2, ?3) "
                                                    "ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
                                                    "next_fire = CASE WHEN paused THEN next_fire ELSE "
                                                    "excluded.next_fire END"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, s.name).Bind(2, s.spec).Bind(3, s.next_fire_ms).Exec());
      }
      for (auto const& fn : d.put_functions) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT OR REPLACE INTO functions(name, spec) VALUES(?1, ?2)"));
        FERRY_RETURN_IF_ERROR(st->Bind(1, fn.name).Bind(2, fn.spec).Exec());
      }
      return OkStatus();
    }));
  }

  StatusOr<std::vector<FunctionRecord>> ListFunctions() override {
    std::lock_guard lock(read_mu_);
    FERRY_ASSIGN_OR_RETURN(auto st, reader_->Prepare("SELECT name, spec FROM functions ORDER BY name"));
    std::vector<FunctionRecord> out;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({st->Text(0), st->Text(1)});
    }
    return out;
  }


 private:
  struct WriteJob {
    std::function<Status(SqliteDb&)> fn;
    std::promise<Status> done;
    bool durable = true;  // answered after the fsync; otherwise after the commit
  };

  // Jobs committed together, and their outcomes, waiting to be answered.
  struct Batch {
    std::vector<WriteJob*> jobs;
    std::vector<Status> results;

    void Answer() {
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (jobs[i] != nullptr) jobs[i]->done.set_value(results[i]);
      }
    }
    // Answers the jobs that need not wait for the fsync, and forgets them.
    void AnswerNonDurable() {
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (jobs[i] != nullptr && !jobs[i]->durable) {
          jobs[i]->done.set_value(results[i]);
          jobs[i] = nullptr;
        }
      }
    }
  };

  // Runs `fn` inside the next group-committed transaction and waits for the commit and, when `durable`, for the
  // fsync that makes it survive a power loss. Leases are not durable: one lost in a crash only means the message
  // is delivered again, which at-least-once delivery allows; everything else a client is told is done, is.
  Status Write(std::function<Status(SqliteDb&)> fn, bool durable = true) {
    if (sync_failed_) return UnavailableError("the disk failed to sync the store; restart Ferry");
    WriteJob job{std::move(fn), {}, durable};
    auto result = job.done.get_future();
    {
      std::lock_guard lock(mu_);
      queue_.push_back(&job);
    }
    cv_.notify_one();
    return result.get();
  }

  // One job, its exceptions (a library that throws on odd input) turned into INTERNAL for that job alone: the
  // writer thread serves every request, so nothing one request brings may end it.
  Status RunJob(WriteJob& job) {
    try {
      return job.fn(*writer_);
    } catch (std::exception const& e) {
      return InternalError(std::string("store: ") + e.what());
    }
  }

  void WriterLoop() {
    pthread_setname_np(pthread_self(), "ferry-writer");
    while (true) {
      Batch b;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        while (!queue_.empty() && static_cast<int>(b.jobs.size()) < kMaxJobsPerCommit) {
          b.jobs.push_back(queue_.front());
          queue_.pop_front();
        }
      }
      auto& batch = b.jobs;
      auto& results = b.results;
      results.assign(batch.size(), OkStatus());
      Status txn = Statement("BEGIN IMMEDIATE");
      for (std::size_t i = 0; txn.ok() && i < batch.size(); ++i) {
        txn = Statement("SAVEPOINT job");
        if (!txn.ok()) break;
        results[i] = RunJob(*batch[i]);
        if (!results[i].ok()) txn = Statement("ROLLBACK TO job");
        if (txn.ok()) txn = Statement("RELEASE job");
      }
      if (txn.ok() && last_message_id_ != committed_message_id_) txn = SaveLastMessageId();
      if (txn.ok()) txn = Statement("COMMIT");
      if (txn.ok()) committed_message_id_ = last_message_id_;
      if (txn.ok() && !published_topics_.empty()) {
        std::sort(published_topics_.begin(), published_topics_.end());
        published_topics_.erase(std::unique(published_topics_.begin(), published_topics_.end()),
                                published_topics_.end());
        std::lock_guard lock(listener_mu_);
        if (publish_listener_) {
          for (auto const& t : published_topics_) publish_listener_(t);
        }
      }
      published_topics_.clear();
      if (!txn.ok()) {
        (void)writer_->Exec("ROLLBACK");
        sub_cache_.clear();  // it may hold what the rollback undid
        // A full disk is the client's to know (RESOURCE_EXHAUSTED); anything else, retry later (UNAVAILABLE).
        StatusCode code = txn.code() == StatusCode::kResourceExhausted ? txn.code() : StatusCode::kUnavailable;
        for (auto& r : results) r = Status(code, "store commit failed: " + txn.message());
      }
      if (wal_fd_ < 0 || !txn.ok()) {
        b.Answer();
        continue;
      }
      b.AnswerNonDurable();
      {
        std::lock_guard lock(sync_mu_);
        sync_queue_.push_back(std::move(b));
      }
      sync_cv_.notify_one();
    }
  }

  // Makes committed batches durable with one fdatasync of the WAL, then answers them.
  void SyncLoop() {
    pthread_setname_np(pthread_self(), "ferry-fsync");
    std::vector<Batch> ready;
    while (true) {
      {
        std::unique_lock lock(sync_mu_);
        sync_cv_.wait(lock, [&] { return sync_stop_ || !sync_queue_.empty(); });
        if (sync_queue_.empty()) return;  // sync_stop_ and drained
        std::swap(ready, sync_queue_);
      }
      bool synced = false;
      if (CurrentStorageFault() == StorageFault::kSyncFails) {
        errno = EIO;
      } else {
        synced = fdatasync(wal_fd_) == 0;
      }
      if (!synced && !sync_failed_.exchange(true)) {
        // After a failed fsync the kernel may have marked the unwritten pages clean: what was written since the
        // last good sync may not be on disk, though reads still show it, and a later sync that succeeds proves
        // nothing about it (PostgreSQL's "fsyncgate"). So nothing more is answered as durable: these batches
        // and every write after them are refused, reads go on, and a restart recovers from what is on disk.
        std::fprintf(stderr, "ferry: fdatasync of the write-ahead log failed: %s; refusing writes until Ferry is "
                     "restarted\n", std::strerror(errno));
      }
      for (auto& b : ready) {
        if (!synced) {
          for (auto& r : b.results) r = UnavailableError("the disk failed to sync the store; restart Ferry");
        }
        b.Answer();
      }
      ready.clear();
    }
  }

  // Ids handed out in a transaction that then failed are skipped, never reused.
  Status SaveLastMessageId() {
    FERRY_ASSIGN_OR_RETURN(auto st, writer_->Prepare("UPDATE meta SET value = ?1 WHERE key = 'last_message_id'"));
    return st->Bind(1, last_message_id_).Exec();
  }

  Status Statement(char const* sql) {
    FERRY_ASSIGN_OR_RETURN(auto st, writer_->Prepare(sql));
    return st->Exec();
  }

  static StatusOr<std::vector<AckRef>> DecodeAll(std::vector<std::string> const& ack_ids) {
    std::vector<AckRef> refs;
    refs.reserve(ack_ids.size());
    for (auto const& id : ack_ids) {
      auto ref = DecodeAckId(id);
      if (!ref) return InvalidArgumentError("Invalid ack id (ack_id=" + id + ")");
      refs.push_back(*ref);
    }
    return refs;
  }

  static StatusOr<std::optional<int64_t>> FindTopicId(SqliteDb& db, std::string const& name) {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id FROM topics WHERE name = ?1"));
    st->Bind(1, name);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    std::optional<int64_t> id;
    if (row) id = st->Int(0);
    st->Reset();
    return id;
  }

  // On the writer thread: a subscription by name, from the cache of decoded specs (decoding the JSON spec for
  // every pull and ack cost more than the rows they touch).
  StatusOr<std::optional<SubRow>> FindSub(SqliteDb& db, std::string const& name) {
    if (auto it = sub_cache_.find(name); it != sub_cache_.end()) return std::optional<SubRow>(it->second);
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id, spec FROM subscriptions WHERE name = ?1"));
    st->Bind(1, name);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<SubRow>();
    SubRow sub{st->Int(0), {}};
    FERRY_ASSIGN_OR_RETURN(sub.spec, DecodeSub(st->Text(1)));
    st->Reset();
    sub_cache_[name] = sub;
    return std::optional<SubRow>(std::move(sub));
  }

  // Wraps a job that changes subscriptions so the cache forgets them before and after it.
  std::function<Status(SqliteDb&)> ChangingSubscriptions(std::function<Status(SqliteDb&)> fn) {
    return [this, fn = std::move(fn)](SqliteDb& db) {
      sub_cache_.clear();
      fanout_cache_.clear();
      Status st = fn(db);
      sub_cache_.clear();
      fanout_cache_.clear();
      return st;
    };
  }

  // Whether `ref` names the current lease of its message on the subscription, held past `now_ms`.
  static StatusOr<bool> IsCurrentLease(SqliteDb& db, int64_t sub_id, AckRef const& ref, int64_t now_ms) {
    if (ref.subscription_id != sub_id) return false;
    FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT 1 FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2 AND "
                                                 "attempts = ?3 AND leased = 1 AND visible_at > ?4"));
    sel->Bind(1, sub_id).Bind(2, ref.message_id).Bind(3, ref.attempt).Bind(4, now_ms);
    FERRY_ASSIGN_OR_RETURN(bool current, sel->Step());
    sel->Reset();
    return current;
  }

  // Ends the subscription's hold on these messages as acknowledged. Returns how many it held.
  StatusOr<int64_t> RemoveDeliveries(SqliteDb& db, SubRow const& sub, std::vector<int64_t> const& msg_ids) {
    if (sub.spec.retain_acked_messages) {
      // Kept as acknowledged for seek: the reference moves from deliveries to acked.
      static MultiRowSql const kKeep("INSERT OR IGNORE INTO acked(sub_id, msg_id, publish_time) SELECT sub_id, "
                                     "msg_id, publish_time FROM deliveries WHERE sub_id = ?1 AND msg_id IN (",
                                     "?", ", ", ")");
      int64_t kept = 0;
      for (std::size_t first = 0; first < msg_ids.size(); first += kRowsPerStatement) {
        int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, msg_ids.size() - first));
        for (auto const* sql : {&kKeep, &AckSql()}) {
          FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare(sql->For(n)));
          st->Bind(1, sub.id);
          for (int i = 0; i < n; ++i) st->Bind(i + 2, msg_ids[first + static_cast<std::size_t>(i)]);
          while (true) {
            FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
            if (!row) break;
            ++kept;  // only the DELETE ... RETURNING yields rows
          }
        }
      }
      return kept;
    }
    std::vector<int64_t> removed;
    for (std::size_t first = 0; first < msg_ids.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, msg_ids.size() - first));
      FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare(AckSql().For(n)));
      del->Bind(1, sub.id);
      for (int i = 0; i < n; ++i) del->Bind(i + 2, msg_ids[first + static_cast<std::size_t>(i)]);
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool row, del->Step());
        if (!row) break;
        removed.push_back(del->Int(0));
      }
    }
    FERRY_RETURN_IF_ERROR(ReleaseMessages(db, removed));
    return static_cast<int64_t>(removed.size());
  }

  static Status CheckDeadLetterTopic(SqliteDb& db, Subscription const& sub) {
    if (!sub.dead_letter_policy) return OkStatus();
    FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, sub.dead_letter_policy->dead_letter_topic));
    if (!id) return NotFoundError("Dead letter topic not found");
    return OkStatus();
  }

  static Status SetVisibility(SqliteDb& db, int64_t sub_id, int64_t msg_id, int64_t visible_at, bool leased) {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE deliveries SET visible_at = ?3, leased = ?4 "
                                                "WHERE sub_id = ?1 AND msg_id = ?2"));
    return st->Bind(1, sub_id).Bind(2, msg_id).Bind(3, visible_at).Bind(4, leased ? 1 : 0).Exec();
  }

  // On the writer thread: the subscriptions of a topic with their filters, cached like FindSub.
  StatusOr<std::vector<FanoutTarget> const*> FanoutOf(SqliteDb& db, int64_t topic_id) {
    if (auto it = fanout_cache_.find(topic_id); it != fanout_cache_.end()) return &it->second;
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id, spec FROM subscriptions WHERE topic_id = ?1"));
    st->Bind(1, topic_id);
    std::vector<FanoutTarget> targets;
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(st->Text(1)));
      FERRY_ASSIGN_OR_RETURN(auto filter, Filter::Parse(spec.filter));
      targets.push_back({st->Int(0), std::move(filter), spec.enable_message_ordering});
    }
    st->Reset();
    return &(fanout_cache_[topic_id] = std::move(targets));
  }

  // Appends messages to a topic and gives each subscription whose filter matches a copy; a message a filter
  // refuses is, as in Pub/Sub, acknowledged on that subscription's behalf at once. Messages nobody receives get ids
  // and are not stored.
  StatusOr<std::vector<int64_t>> InsertMessages(SqliteDb& db, int64_t topic_id,
                                                std::vector<PubsubMessage> const& messages, int64_t now_ms) {
    std::vector<int64_t> ids;
    ids.reserve(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) ids.push_back(++last_message_id_);
    FERRY_ASSIGN_OR_RETURN(auto const* targets, FanoutOf(db, topic_id));
    if (targets->empty()) return ids;
    struct Copy {
      int64_t sub_id;
      std::size_t message;
      bool ordered;
    };
    std::vector<Copy> copies;
    copies.reserve(messages.size() * targets->size());
    std::vector<int64_t> refs(messages.size(), 0);
    for (std::size_t m = 0; m < messages.size(); ++m) {
      for (auto const& target : *targets) {
        if (!target.filter.Matches(messages[m].attributes)) continue;
        copies.push_back({target.sub_id, m, target.ordered});
        ++refs[m];
      }
    }
    std::vector<std::size_t> stored;
    for (std::size_t m = 0; m < messages.size(); ++m) {
      if (refs[m] > 0) stored.push_back(m);
    }
    for (std::size_t first = 0; first < stored.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, stored.size() - first));
      FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare(InsertMessagesSql().For(n)));
      for (int i = 0; i < n; ++i) {
        std::size_t m = stored[first + static_cast<std::size_t>(i)];
        int const p = i * 7;
        ins->Bind(p + 1, ids[m])
            .Bind(p + 2, topic_id)
            .Bind(p + 3, now_ms)
            .BindBlob(p + 4, messages[m].data)
            .Bind(p + 5, EncodeAttributes(messages[m].attributes))
            .Bind(p + 6, messages[m].ordering_key)
            .Bind(p + 7, refs[m]);
      }
      FERRY_RETURN_IF_ERROR(ins->Exec());
    }
    static std::string const kNoKey;
    for (std::size_t first = 0; first < copies.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, copies.size() - first));
      FERRY_ASSIGN_OR_RETURN(auto fan, db.Prepare(InsertDeliveriesSql().For(n)));
      for (int i = 0; i < n; ++i) {
        auto const& copy = copies[first + static_cast<std::size_t>(i)];
        int const p = i * 5;
        fan->Bind(p + 1, copy.sub_id)
            .Bind(p + 2, ids[copy.message])
            .Bind(p + 3, now_ms)
            .Bind(p + 4, now_ms)
            .Bind(p + 5, copy.ordered ? messages[copy.message].ordering_key : kNoKey);
      }
      FERRY_RETURN_IF_ERROR(fan->Exec());
    }
    return ids;
  }

  // Leases the messages until `until`, counting one more delivery attempt each.
  static Status MarkLeased(SqliteDb& db, int64_t sub_id, std::vector<int64_t> const& msg_ids, int64_t until) {
    for (std::size_t first = 0; first < msg_ids.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, msg_ids.size() - first));
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare(LeaseSql().For(n)));
      st->Bind(1, sub_id).Bind(2, until);
      for (int i = 0; i < n; ++i) st->Bind(i + 3, msg_ids[first + static_cast<std::size_t>(i)]);
      FERRY_RETURN_IF_ERROR(st->Exec());
    }
    return OkStatus();
  }

  // Drops one subscription's hold on each message, deleting a message with its last hold.
  static Status ReleaseMessages(SqliteDb& db, std::vector<int64_t> const& msg_ids) {
    static MultiRowSql const kDelete("DELETE FROM messages WHERE refs <= 1 AND id IN (", "?", ", ", ")");
    static MultiRowSql const kDecrement("UPDATE messages SET refs = refs - 1 WHERE id IN (", "?", ", ", ")");
    for (std::size_t first = 0; first < msg_ids.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, msg_ids.size() - first));
      for (auto const* sql : {&kDelete, &kDecrement}) {  // the decrement finds only the rows still there
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare(sql->For(n)));
        for (int i = 0; i < n; ++i) st->Bind(i + 1, msg_ids[first + static_cast<std::size_t>(i)]);
        FERRY_RETURN_IF_ERROR(st->Exec());
      }
    }
    return OkStatus();
  }

  // Removes a subscription's copies of messages published before `before_ms`. Returns how many.
  static StatusOr<int64_t> DropDeliveries(SqliteDb& db, int64_t sub_id, int64_t before_ms) {
    FERRY_ASSIGN_OR_RETURN(auto dec, db.Prepare("UPDATE messages SET refs = refs - 1 WHERE id IN (SELECT msg_id "
                                                "FROM deliveries WHERE sub_id = ?1 AND publish_time < ?2)"));
    FERRY_RETURN_IF_ERROR(dec->Bind(1, sub_id).Bind(2, before_ms).Exec());
    FERRY_ASSIGN_OR_RETURN(auto gc, db.Prepare("DELETE FROM messages WHERE refs <= 0 AND id IN (SELECT msg_id FROM "
                                               "deliveries WHERE sub_id = ?1 AND publish_time < ?2)"));
    FERRY_RETURN_IF_ERROR(gc->Bind(1, sub_id).Bind(2, before_ms).Exec());
    FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM deliveries WHERE sub_id = ?1 AND publish_time < ?2"));
    FERRY_RETURN_IF_ERROR(del->Bind(1, sub_id).Bind(2, before_ms).Exec());
    return static_cast<int64_t>(db.Changes());
  }

  // Forgets a subscription's acknowledged messages published before `before_ms`.
  static Status DropAcked(SqliteDb& db, int64_t sub_id, int64_t before_ms) {
    FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("DELETE FROM acked WHERE sub_id = ?1 AND publish_time < ?2 "
                                                "RETURNING msg_id"));
    sel->Bind(1, sub_id).Bind(2, before_ms);
    FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*sel));
    return ReleaseMessages(db, ids);
  }

  static Status DropSnapshot(SqliteDb& db, int64_t snap_id) {
    FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("DELETE FROM snapshot_messages WHERE snap_id = ?1 RETURNING msg_id"));
    sel->Bind(1, snap_id);
    FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*sel));
    FERRY_RETURN_IF_ERROR(ReleaseMessages(db, ids));
    FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM snapshots WHERE id = ?1"));
    return del->Bind(1, snap_id).Exec();
  }

  static StatusOr<Snapshot> DecodeSnapshot(SqliteStmt& st) {
    Snapshot s;
    s.name = st.Text(0);
    s.topic = st.Text(1);
    s.expire_time_ms = st.Int(2);
    FERRY_ASSIGN_OR_RETURN(s.labels, DecodeAttributes(st.Text(3)));
    return s;
  }

  // The statements of a seek for one condition `keep` on publish_time and msg_id (?1 is the subscription, ?2
  // and ?3 the condition's own parameters, ?4 the time now). Built once: the statement cache keys on addresses.
  struct SeekSql {
    explicit SeekSql(std::string const& keep)
        : back("INSERT OR IGNORE INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) SELECT "
               "sub_id, msg_id, publish_time, ?4, CASE WHEN ?5 THEN (SELECT ordering_key FROM messages WHERE "
               "id = msg_id) ELSE '' END FROM acked WHERE sub_id = ?1 AND (" + keep + ")"),
          forget("DELETE FROM acked WHERE sub_id = ?1 AND (" + keep + ")"),
          rest("SELECT msg_id FROM deliveries WHERE sub_id = ?1 AND NOT (" + keep + ")") {}
    std::string back, forget, rest;
  };
  static SeekSql const& SeekToTimeSql() {
    static SeekSql const sql("publish_time >= ?2");
    return sql;
  }
  static SeekSql const& SeekToSnapshotSql() {
    static SeekSql const sql("publish_time >= ?2 OR msg_id IN (SELECT msg_id FROM snapshot_messages WHERE snap_id = ?3)");
    return sql;
  }

  // Seek: the subscription's messages for which the statements' condition holds (with parameters `p2` and `p3`)
  // become unacknowledged and deliverable now; the rest acknowledged.
  Status Seek(SqliteDb& db, SubRow const& sub, SeekSql const& sql, int64_t p2, int64_t p3, int64_t now_ms) {
    // Acknowledged messages kept for seek come back.
    FERRY_ASSIGN_OR_RETURN(auto back, db.Prepare(sql.back.c_str()));
    FERRY_RETURN_IF_ERROR(back->Bind(1, sub.id)
                              .Bind(2, p2)
                              .Bind(3, p3)
                              .Bind(4, now_ms)
                              .Bind(5, sub.spec.enable_message_ordering ? 1 : 0)
                              .Exec());
    FERRY_ASSIGN_OR_RETURN(auto forget, db.Prepare(sql.forget.c_str()));
    FERRY_RETURN_IF_ERROR(forget->Bind(1, sub.id).Bind(2, p2).Bind(3, p3).Exec());
    // The rest is acknowledged.
    FERRY_ASSIGN_OR_RETURN(auto rest, db.Prepare(sql.rest.c_str()));
    rest->Bind(1, sub.id).Bind(2, p2).Bind(3, p3);
    FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*rest));
    FERRY_ASSIGN_OR_RETURN(int64_t acked, RemoveDeliveries(db, sub, ids));
    (void)acked;
    FERRY_ASSIGN_OR_RETURN(auto now, db.Prepare("UPDATE deliveries SET visible_at = ?2, leased = 0 WHERE sub_id = ?1"));
    return now->Bind(1, sub.id).Bind(2, now_ms).Exec();
  }

  static StatusOr<PubsubMessage> LoadMessage(SqliteDb& db, int64_t msg_id) {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT publish_time, data, attributes, ordering_key FROM messages "
                                                "WHERE id = ?1"));
    st->Bind(1, msg_id);
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return InternalError("message " + std::to_string(msg_id) + " is missing");
    PubsubMessage m;
    m.message_id = std::to_string(msg_id);
    m.publish_time_ms = st->Int(0);
    m.data = st->Text(1);
    FERRY_ASSIGN_OR_RETURN(m.attributes, DecodeAttributes(st->Text(2)));
    m.ordering_key = st->Text(3);
    st->Reset();
    return m;
  }

  // Publishes the message to the subscription's dead-letter topic with the CloudPubSubDeadLetterSource*
  // attributes and removes it from the subscription, in the caller's transaction. False when the dead-letter
  // topic no longer exists: the message then stays and is redelivered.
  StatusOr<bool> DeadLetter(SqliteDb& db, SubRow const& sub, int64_t msg_id, int attempts, int64_t now_ms) {
    FERRY_ASSIGN_OR_RETURN(auto dlt_id, FindTopicId(db, sub.spec.dead_letter_policy->dead_letter_topic));
    if (!dlt_id) return false;
    FERRY_ASSIGN_OR_RETURN(auto message, LoadMessage(db, msg_id));
    auto parsed = ParseResourceName(sub.spec.name, ResourceKind::kSubscription);
    FERRY_RETURN_IF_ERROR(parsed);
    message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = std::to_string(attempts);
    message.attributes["CloudPubSubDeadLetterSourceSubscription"] = parsed->id;
    message.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = parsed->project;
    message.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"] = FormatRfc3339(message.publish_time_ms);
    FERRY_ASSIGN_OR_RETURN(auto err, db.Prepare("SELECT last_error FROM deliveries WHERE sub_id = ?1 AND "
                                                "msg_id = ?2 AND last_error IS NOT NULL"));
    err->Bind(1, sub.id).Bind(2, msg_id);
    FERRY_ASSIGN_OR_RETURN(bool has_error, err->Step());
    if (has_error) message.attributes[kLastErrorAttribute] = TruncateUtf8(err->Text(0), kMaxAttributeValueBytes);
    err->Reset();
    FERRY_RETURN_IF_ERROR(InsertMessages(db, *dlt_id, {message}, now_ms));
    FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2"));
    FERRY_RETURN_IF_ERROR(del->Bind(1, sub.id).Bind(2, msg_id).Exec());
    FERRY_RETURN_IF_ERROR(ReleaseMessages(db, {msg_id}));
    return true;
  }

  std::unique_ptr<SqliteDb> writer_;  // used only on thread_
  std::mutex read_mu_;
  std::unique_ptr<SqliteDb> reader_;  // GUARDED_BY(read_mu_)
  int64_t last_message_id_;           // used only on thread_: the last id handed out
  std::unordered_map<std::string, SubRow> sub_cache_;  // used only on thread_
  std::unordered_map<int64_t, std::vector<FanoutTarget>> fanout_cache_;  // used only on thread_: by topic id
  std::vector<std::string> published_topics_;          // used only on thread_: topics published to in this batch
  std::mutex listener_mu_;
  std::function<void(std::string const& topic)> publish_listener_;  // GUARDED_BY(listener_mu_)
  int64_t committed_message_id_;      // used only on thread_: the value meta holds

  int const wal_fd_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WriteJob*> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;            // GUARDED_BY(mu_)

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::vector<Batch> sync_queue_;  // GUARDED_BY(sync_mu_): committed, not yet fsynced
  bool sync_stop_ = false;         // GUARDED_BY(sync_mu_)
  std::atomic<bool> sync_failed_{false};  // an fsync failed: every write is refused from then on

  std::thread thread_;
  std::thread sync_thread_;
};

Status Migrate(SqliteDb& db) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("PRAGMA user_version"));
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  int64_t version = row ? st->Int(0) : 0;
  st->Reset();
  constexpr int64_t kLatest = std::size(kMigrations);
  if (version > kLatest) {
    return FailedPreconditionError("database schema version " + std::to_string(version) +
                                   " is newer than this ferry (" + std::to_string(kLatest) + ")");
  }
  for (int64_t v = version; v < kLatest; ++v) {
    FERRY_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    auto applied = db.Exec(kMigrations[v]);
    if (applied.ok()) applied = db.Exec("PRAGMA user_version = " + std::to_string(v + 1));
    if (!applied.ok()) {
      (void)db.Exec("ROLLBACK");
      return applied;
    }
    FERRY_RETURN_IF_ERROR(db.Exec("COMMIT"));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<MessageStore>> MakeSqliteMessageStore(StoreOptions const& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return UnavailableError("cannot create data directory \"" + options.data_dir + "\": " + ec.message());
  std::string path = (std::filesystem::path(options.data_dir) / "ferry.db").string();

  FERRY_ASSIGN_OR_RETURN(auto writer, SqliteDb::Open(path));
  // 16 KiB pages: fewer B-tree levels and page writes per message than the 4 KiB default (measured with
  // bench/pubsub_bench.sh: +10% publish, +5-15% pull+ack). Only a new database takes it.
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA page_size = 16384"));
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode = WAL"));
  FERRY_RETURN_IF_ERROR(writer->Exec(options.sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF"));
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA foreign_keys = OFF"));
  FERRY_RETURN_IF_ERROR(Migrate(*writer));

  int64_t last_message_id = 0;
  {  // scoped: the statement must be reset before the writer thread owns the connection
    FERRY_ASSIGN_OR_RETURN(auto last, writer->Prepare("SELECT value FROM meta WHERE key = 'last_message_id'"));
    FERRY_ASSIGN_OR_RETURN(bool found, last->Step());
    if (!found) return InternalError("database is missing meta.last_message_id");
    last_message_id = last->Int(0);
  }

  // With a descriptor of the WAL, the store syncs it itself, off the writer's path (see the top of this file);
  // without one, SQLite's own synchronous=FULL keeps every answer durable.
  int wal_fd = -1;
  if (options.sync) {
    wal_fd = open((path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd >= 0) FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = NORMAL"));
  }

  FERRY_ASSIGN_OR_RETURN(auto reader, SqliteDb::Open(path));
  FERRY_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON"));
  return std::unique_ptr<MessageStore>(
      new SqliteMessageStore(std::move(writer), std::move(reader), last_message_id, wal_fd));
}

}  // namespace ferry
