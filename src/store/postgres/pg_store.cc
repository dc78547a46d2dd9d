// The PostgreSQL store: connections, schema and migrations, the steps its concerns share, message partitions,
// and the LISTEN thread that hears other nodes' publishes.
#include "store/postgres/pg_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/status_macros.h"
#include "model/json_codec.h"
#include "store/delivery_policy.h"
#include "store/stored_json.h"

namespace ferry {
namespace {

// Ids per message partition. A partition is dropped whole once no subscription, retained ack or snapshot
// refers to any of its messages, so a message body is never deleted row by row (no dead tuples in the biggest
// table) and a slow consumer keeps at most one partition's worth of neighbours alive.
constexpr int64_t kPartitionIds = 1 << 20;

// Schema migrations, applied in order under an advisory lock, so several nodes starting at once run each once.
// Never edit a shipped entry: append a new one. Names compare bytewise (COLLATE "C"), as in SQLite.
constexpr char const* kMigrations[] = {
    R"sql(
CREATE TABLE topics(
  id bigserial PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  spec text NOT NULL
);
CREATE TABLE subscriptions(
  id bigserial PRIMARY KEY,              -- never reused, so ack ids of a deleted subscription stay dead
  name text COLLATE "C" NOT NULL UNIQUE,
  topic_id bigint,                       -- NULL once the topic is deleted
  spec text NOT NULL
);
CREATE INDEX subscriptions_by_topic ON subscriptions(topic_id);
CREATE SEQUENCE message_ids;
-- Append-only, partitioned by id range (message_partitions lists them); never updated, never deleted by row.
CREATE TABLE messages(
  id bigint NOT NULL,
  topic_id bigint NOT NULL,
  publish_time bigint NOT NULL,
  data bytea NOT NULL,
  attributes text NOT NULL,
  ordering_key text NOT NULL,
  PRIMARY KEY(id)
) PARTITION BY RANGE (id);
CREATE TABLE message_partitions(n bigint PRIMARY KEY);
-- A subscription's copy of a message and its lease. The hot table: updated on every lease, deleted on every
-- ack, so it is vacuumed early and often, and leaves room on each page for HOT updates.
CREATE TABLE deliveries(
  sub_id bigint NOT NULL,
  msg_id bigint NOT NULL,
  publish_time bigint NOT NULL,
  visible_at bigint NOT NULL,
  attempts bigint NOT NULL DEFAULT 0,
  leased boolean NOT NULL DEFAULT false,
  ordering_key text NOT NULL DEFAULT '',
  last_error text,
  PRIMARY KEY(sub_id, msg_id)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX deliveries_by_visibility ON deliveries(sub_id, visible_at);
CREATE INDEX deliveries_by_key ON deliveries(sub_id, ordering_key) WHERE ordering_key <> '';
CREATE TABLE acked(
  sub_id bigint NOT NULL,
  msg_id bigint NOT NULL,
  publish_time bigint NOT NULL,
  PRIMARY KEY(sub_id, msg_id)
);
CREATE TABLE snapshots(
  id bigserial PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  topic text COLLATE "C" NOT NULL,
  created bigint NOT NULL,
  expire bigint NOT NULL,
  labels text NOT NULL
);
CREATE TABLE snapshot_messages(
  snap_id bigint NOT NULL,
  msg_id bigint NOT NULL,
  publish_time bigint NOT NULL,
  PRIMARY KEY(snap_id, msg_id)
);
CREATE TABLE functions(
  name text COLLATE "C" PRIMARY KEY,
  spec text NOT NULL
);
CREATE TABLE schedules(
  name text COLLATE "C" PRIMARY KEY,
  spec text NOT NULL,
  next_fire bigint NOT NULL,
  last_fired bigint NOT NULL DEFAULT 0,
  paused boolean NOT NULL DEFAULT false
);
CREATE TABLE buckets(
  name text COLLATE "C" PRIMARY KEY,
  project text NOT NULL,
  path text NOT NULL,
  versioning boolean NOT NULL DEFAULT false
);
CREATE TABLE bucket_objects(
  bucket text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  object text NOT NULL,
  PRIMARY KEY(bucket, name)
);
)sql",
    R"sql(
-- Claims on work one node does at a time (store/claim_store.h): taken, renewed, released, or run out.
CREATE TABLE claims(
  name text COLLATE "C" PRIMARY KEY,
  node text NOT NULL,
  until bigint NOT NULL
);
)sql",
    R"sql(
-- What each node tells of itself (store/claim_store.h), until it runs out.
CREATE TABLE nodes(
  node text COLLATE "C" PRIMARY KEY,
  until bigint NOT NULL,
  status text NOT NULL
);
)sql",
    R"sql(
-- Seeks of the subscription so far: each ack id carries it, so an ack id from before a seek names nothing.
ALTER TABLE subscriptions ADD COLUMN seeks bigint NOT NULL DEFAULT 0;
)sql",
};

// Any number that names Ferry's advisory locks, so they cannot clash with an application's in the same database.
constexpr int64_t kMigrationLock = 0x46657272790001;
constexpr int64_t kPartitionLock = 0x46657272790002;  // creating partitions
// Dropping partitions (exclusive) against transactions that insert messages (shared): a drop never races an
// insert whose ids it has not seen committed.
constexpr int64_t kDropLock = 0x46657272790004;

constexpr char kChannel[] = "ferry_publish";

}  // namespace

PgStore::PgStore(std::string conninfo, int pool_size)
    : pool_(std::move(conninfo), pool_size, std::chrono::seconds(10)) {}

PgStore::~PgStore() {
  stop_ = true;
  if (listen_thread_.joinable()) listen_thread_.join();
}

Status PgStore::Start() {
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(db.Run("SELECT pg_advisory_xact_lock($1::int8)", PgParams().Add(kMigrationLock)));
    FERRY_RETURN_IF_ERROR(db.Exec("CREATE TABLE IF NOT EXISTS ferry_migrations(version int PRIMARY KEY)"));
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT COALESCE(MAX(version), 0) FROM ferry_migrations"));
    int64_t version = rows.Int(0, 0);
    constexpr int64_t kLatest = std::size(kMigrations);
    if (version > kLatest) {
      return FailedPreconditionError("database schema version " + std::to_string(version) +
                                     " is newer than this ferry (" + std::to_string(kLatest) + ")");
    }
    for (int64_t v = version; v < kLatest; ++v) {
      FERRY_RETURN_IF_ERROR(db.Exec(kMigrations[v]));
      FERRY_RETURN_IF_ERROR(
          db.Run("INSERT INTO ferry_migrations(version) VALUES($1::int4)", PgParams().Add(v + 1)));
    }
    return OkStatus();
  }));
  int64_t last = 0;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT last_value FROM message_ids"));
    last = rows.Int(0, 0);
    return OkStatus();
  }));
  FERRY_RETURN_IF_ERROR(EnsurePartitions(last + kPartitionIds));
  listen_thread_ = std::thread([this] { ListenLoop(); });
  return OkStatus();
}

Status PgStore::Txn(std::function<Status(PgConn&)> const& fn) {
  Status st;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto conn = pool_.Acquire();
    if (!conn.ok()) return conn.status();
    PgConn& db = **conn;
    st = db.Exec("BEGIN");
    if (st.ok()) {
      try {
        st = fn(db);
      } catch (std::exception const& e) {
        st = InternalError(std::string("store: ") + e.what());
      }
      st = st.ok() ? db.Exec("COMMIT") : st;
    }
    if (!st.ok()) (void)db.Exec("ROLLBACK");
    if (!IsRetryable(st)) return st;
  }
  return st;
}

Status PgStore::Read(std::function<Status(PgConn&)> const& fn) {
  auto conn = pool_.Acquire();
  if (!conn.ok()) return conn.status();
  try {
    return fn(**conn);
  } catch (std::exception const& e) {
    return InternalError(std::string("store: ") + e.what());
  }
}

StatusOr<std::optional<int64_t>> PgStore::FindTopicId(PgConn& db, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT id FROM topics WHERE name = $1", PgParams().Add(name)));
  if (rows.empty()) return std::optional<int64_t>();
  return std::optional<int64_t>(rows.Int(0, 0));
}

StatusOr<std::optional<PgSub>> PgStore::FindSub(PgConn& db, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto rows,
                         db.Query("SELECT id, spec, seeks FROM subscriptions WHERE name = $1", PgParams().Add(name)));
  if (rows.empty()) return std::optional<PgSub>();
  PgSub sub;
  sub.id = rows.Int(0, 0);
  sub.seeks = rows.Int(0, 2);
  FERRY_ASSIGN_OR_RETURN(auto json, ParseStoredJson(rows.Text(0, 1)));
  FERRY_ASSIGN_OR_RETURN(sub.spec, SubscriptionFromJson(json));
  return std::optional<PgSub>(std::move(sub));
}

Status PgStore::CheckDeadLetterTopic(PgConn& db, Subscription const& sub) {
  if (!sub.dead_letter_policy) return OkStatus();
  FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, sub.dead_letter_policy->dead_letter_topic));
  if (!id) return NotFoundError("Dead letter topic not found");
  return OkStatus();
}

StatusOr<bool> PgStore::IsCurrentLease(PgConn& db, PgSub const& sub, AckRef const& ref, int64_t now_ms) {
  if (!IssuedBy(ref, sub.id, sub.seeks)) return false;
  FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT 1 FROM deliveries WHERE sub_id = $1 AND msg_id = $2 AND "
                                             "attempts = $3 AND leased AND visible_at > $4",
                                             PgParams().Add(sub.id).Add(ref.message_id).Add(int64_t{ref.attempt})
                                                 .Add(now_ms)));
  return !rows.empty();
}

StatusOr<int64_t> PgStore::RemoveDeliveries(PgConn& db, PgSub const& sub, std::vector<int64_t> const& msg_ids) {
  if (msg_ids.empty()) return int64_t{0};
  if (sub.spec.retain_acked_messages) {
    // Kept as acknowledged, for seek.
    FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO acked(sub_id, msg_id, publish_time) SELECT sub_id, msg_id, "
                                 "publish_time FROM deliveries WHERE sub_id = $1 AND msg_id = ANY($2::int8[]) "
                                 "ON CONFLICT DO NOTHING",
                                 PgParams().Add(sub.id).AddArray(msg_ids)));
  }
  FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("DELETE FROM deliveries WHERE sub_id = $1 AND msg_id = ANY($2::int8[])",
                                             PgParams().Add(sub.id).AddArray(msg_ids)));
  return int64_t{rows.Affected()};
}

Status PgStore::SetVisibility(PgConn& db, int64_t sub_id, int64_t msg_id, int64_t visible_at, bool leased) {
  return db.Run("UPDATE deliveries SET visible_at = $3, leased = $4 WHERE sub_id = $1 AND msg_id = $2",
                PgParams().Add(sub_id).Add(msg_id).Add(visible_at).AddBool(leased));
}

Status PgStore::DropSubscriptionRows(PgConn& db, int64_t sub_id) {
  FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM deliveries WHERE sub_id = $1", PgParams().Add(sub_id)));
  FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM acked WHERE sub_id = $1", PgParams().Add(sub_id)));
  return db.Run("DELETE FROM subscriptions WHERE id = $1", PgParams().Add(sub_id));
}

StatusOr<std::vector<int64_t>> PgStore::InsertMessages(PgConn& db, int64_t topic_id, std::string const& topic,
                                                       std::vector<PubsubMessage> const& messages, int64_t now_ms,
                                                       int64_t only_sub) {
  FERRY_ASSIGN_OR_RETURN(auto id_rows, db.Query("WITH l AS (SELECT pg_advisory_xact_lock_shared($2::int8)) "
                                                "SELECT nextval('message_ids') FROM l, generate_series(1, $1::int8)",
                                                PgParams().Add(static_cast<int64_t>(messages.size())).Add(kDropLock)));
  std::vector<int64_t> ids;
  ids.reserve(messages.size());
  for (int i = 0; i < id_rows.size(); ++i) ids.push_back(id_rows.Int(i, 0));
  FERRY_ASSIGN_OR_RETURN(auto subs, db.Query("SELECT id, spec FROM subscriptions WHERE topic_id = $1 AND ($2 = 0 OR "
                                             "id = $2)",
                                             PgParams().Add(topic_id).Add(only_sub)));
  if (subs.empty() || ids.empty()) return ids;
  if (ids.back() >= partitions_end_) FERRY_RETURN_IF_ERROR(EnsurePartitions(ids.back() + kPartitionIds));
  struct Target {
    int64_t sub_id;
    Filter filter;
    bool ordered;
  };
  std::vector<Target> targets;
  for (int i = 0; i < subs.size(); ++i) {
    FERRY_ASSIGN_OR_RETURN(auto json, ParseStoredJson(subs.Text(i, 1)));
    FERRY_ASSIGN_OR_RETURN(auto spec, SubscriptionFromJson(json));
    FERRY_ASSIGN_OR_RETURN(auto filter, Filter::Parse(spec.filter));
    targets.push_back({subs.Int(i, 0), std::move(filter), spec.enable_message_ordering});
  }
  // One COPY a table, whatever the count.
  std::string message_rows, delivery_rows;
  std::string const common = "\t" + std::to_string(now_ms) + "\t";
  for (std::size_t m = 0; m < messages.size(); ++m) {
    bool stored = false;
    for (auto const& t : targets) {
      if (!t.filter.Matches(messages[m].attributes)) continue;
      // sub_id, msg_id, publish_time, visible_at, ordering_key
      delivery_rows += std::to_string(t.sub_id) + "\t" + std::to_string(ids[m]) + common + std::to_string(now_ms) + "\t";
      if (t.ordered) AppendCopyText(delivery_rows, messages[m].ordering_key);
      delivery_rows += '\n';
      stored = true;
    }
    if (!stored) continue;  // nobody receives it: an id, and nothing stored, as in Pub/Sub
    // id, topic_id, publish_time, data, attributes, ordering_key
    message_rows += std::to_string(ids[m]) + "\t" + std::to_string(topic_id) + common;
    AppendCopyBytes(message_rows, messages[m].data);
    message_rows += '\t';
    AppendCopyText(message_rows, EncodeAttributes(messages[m].attributes));
    message_rows += '\t';
    AppendCopyText(message_rows, messages[m].ordering_key);
    message_rows += '\n';
  }
  if (message_rows.empty()) return ids;
  FERRY_RETURN_IF_ERROR(db.CopyIn("COPY messages(id, topic_id, publish_time, data, attributes, ordering_key) FROM STDIN",
                                  message_rows));
  FERRY_RETURN_IF_ERROR(db.CopyIn("COPY deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) FROM STDIN",
                                  delivery_rows));
  // Every node's subscribers and dispatchers hear of it when this commits.
  FERRY_RETURN_IF_ERROR(NotifyAll(db, topic));
  return ids;
}

Status PgStore::NotifyAll(PgConn& db, std::string const& topic) {
  return db.Run("SELECT pg_notify('ferry_publish', $1)", PgParams().Add(topic));  // kChannel
}

StatusOr<PubsubMessage> PgStore::LoadMessage(PgConn& db, int64_t msg_id) {
  FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT publish_time, data, attributes, ordering_key FROM messages "
                                             "WHERE id = $1",
                                             PgParams().Add(msg_id)));
  if (rows.empty()) return InternalError("message " + std::to_string(msg_id) + " is missing");
  PubsubMessage m;
  m.message_id = std::to_string(msg_id);
  m.publish_time_ms = rows.Int(0, 0);
  m.data = rows.Bytes(0, 1);
  FERRY_ASSIGN_OR_RETURN(m.attributes, DecodeAttributes(rows.Text(0, 2)));
  m.ordering_key = rows.Text(0, 3);
  return m;
}

StatusOr<bool> PgStore::DeadLetter(PgConn& db, PgSub const& sub, int64_t msg_id, int attempts, int64_t now_ms) {
  std::string const& dlt = sub.spec.dead_letter_policy->dead_letter_topic;
  FERRY_ASSIGN_OR_RETURN(auto dlt_id, FindTopicId(db, dlt));
  if (!dlt_id) return false;
  FERRY_ASSIGN_OR_RETURN(auto message, LoadMessage(db, msg_id));
  FERRY_ASSIGN_OR_RETURN(auto err, db.Query("SELECT last_error FROM deliveries WHERE sub_id = $1 AND msg_id = $2 "
                                            "AND last_error IS NOT NULL",
                                            PgParams().Add(sub.id).Add(msg_id)));
  std::optional<std::string> last_error;
  if (!err.empty()) last_error = err.Text(0, 0);
  FERRY_ASSIGN_OR_RETURN(message, DeadLetterCopy(std::move(message), sub.spec, attempts, last_error));
  FERRY_RETURN_IF_ERROR(InsertMessages(db, *dlt_id, dlt, {message}, now_ms));
  FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM deliveries WHERE sub_id = $1 AND msg_id = $2",
                               PgParams().Add(sub.id).Add(msg_id)));
  return true;
}

// In a transaction of its own (DDL takes a lock on the parent table for its duration), under an advisory lock so
// nodes do not race to create the same partition.
Status PgStore::EnsurePartitions(int64_t up_to_id) {
  std::lock_guard lock(ddl_mu_);
  if (up_to_id < partitions_end_) return OkStatus();
  int64_t end = 0;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(db.Run("SELECT pg_advisory_xact_lock($1::int8)", PgParams().Add(kPartitionLock)));
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT COALESCE(MAX(n), -1) FROM message_partitions"));
    int64_t n = rows.Int(0, 0) + 1;
    for (; n * kPartitionIds <= up_to_id; ++n) {
      std::string lo = std::to_string(n * kPartitionIds), hi = std::to_string((n + 1) * kPartitionIds);
      FERRY_RETURN_IF_ERROR(db.Exec("CREATE TABLE IF NOT EXISTS messages_" + std::to_string(n) +
                                    " PARTITION OF messages FOR VALUES FROM (" + lo + ") TO (" + hi + ")"));
      FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO message_partitions(n) VALUES($1) ON CONFLICT DO NOTHING",
                                   PgParams().Add(n)));
    }
    end = n * kPartitionIds;
    return OkStatus();
  }));
  partitions_end_ = end;
  return OkStatus();
}

// A partition goes when every id in it is below the oldest message anything refers to: each subscription's
// oldest delivery and retained ack, each snapshot's oldest message (each the first entry of its primary key,
// so the watermark costs an index probe per subscription and snapshot, and inserts pay for no extra index).
Status PgStore::DropUnusedPartitions() {
  std::lock_guard lock(ddl_mu_);
  return Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(db.Run("SELECT pg_advisory_xact_lock($1::int8)", PgParams().Add(kDropLock)));
    FERRY_ASSIGN_OR_RETURN(
        auto watermark,
        db.Query("SELECT LEAST((SELECT last_value + 1 FROM message_ids), "
                 "(SELECT MIN((SELECT msg_id FROM deliveries d WHERE d.sub_id = s.id ORDER BY msg_id LIMIT 1)) "
                 "FROM subscriptions s), "
                 "(SELECT MIN((SELECT msg_id FROM acked a WHERE a.sub_id = s.id ORDER BY msg_id LIMIT 1)) "
                 "FROM subscriptions s), "
                 "(SELECT MIN((SELECT msg_id FROM snapshot_messages m WHERE m.snap_id = p.id ORDER BY msg_id "
                 "LIMIT 1)) FROM snapshots p))"));
    int64_t lowest = watermark.Int(0, 0);
    // The partition in use stays whatever the watermark: publishes are writing into it.
    FERRY_ASSIGN_OR_RETURN(auto parts, db.Query("SELECT n FROM message_partitions WHERE (n + 1) * $1::int8 <= $2 "
                                                "ORDER BY n",
                                                PgParams().Add(kPartitionIds).Add(lowest)));
    for (int i = 0; i < parts.size(); ++i) {
      int64_t n = parts.Int(i, 0);
      FERRY_RETURN_IF_ERROR(db.Exec("DROP TABLE IF EXISTS messages_" + std::to_string(n)));
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM message_partitions WHERE n = $1", PgParams().Add(n)));
    }
    return OkStatus();
  });
}

void PgStore::SetPublishListener(std::function<void(std::string const& topic)> listener) {
  std::lock_guard lock(listener_mu_);
  publish_listener_ = std::move(listener);
}

void PgStore::Notify(std::string const& topic) {
  std::lock_guard lock(listener_mu_);
  if (publish_listener_) publish_listener_(topic);
}

// One connection LISTENs for every node's publishes (its own included) and wakes this node's subscribers. When
// it is lost, it reconnects; meanwhile pulls still find messages by their periodic recheck.
void PgStore::ListenLoop() {
  pthread_setname_np(pthread_self(), "ferry-pg-listen");
  while (!stop_) {
    auto conn = PgConn::Open(pool_.conninfo());
    if (!conn.ok() || !(*conn)->Exec(std::string("LISTEN ") + kChannel).ok()) {
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    pg_conn* raw = (*conn)->raw();
    while (!stop_ && PQstatus(raw) == CONNECTION_OK) {
      pollfd fd{PQsocket(raw), POLLIN, 0};
      if (poll(&fd, 1, 200) < 0) break;
      if (PQconsumeInput(raw) == 0) break;
      while (PGnotify* n = PQnotifies(raw)) {
        std::string topic = n->extra;
        PQfreemem(n);
        Notify(topic);
      }
    }
  }
}

StatusOr<std::unique_ptr<Store>> MakePostgresStore(std::string const& conninfo) {
  auto store = std::make_unique<PgStore>(conninfo, 16);
  FERRY_RETURN_IF_ERROR(store->Start());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace ferry
