// The embedded store's schema and its migrations.
#include <iterator>
#include <string>

#include "common/status_macros.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store.h"

namespace ferry {
namespace {

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
    R"sql(
-- Claims on work one node does at a time (store/claim_store.h): taken, renewed, released, or run out.
CREATE TABLE claims(
  name TEXT PRIMARY KEY,
  node TEXT NOT NULL,
  until INTEGER NOT NULL                 -- unix ms
) WITHOUT ROWID;
)sql",
    R"sql(
-- What each node tells of itself (store/claim_store.h), until it runs out.
CREATE TABLE nodes(
  node TEXT PRIMARY KEY,
  until INTEGER NOT NULL,                -- unix ms
  status TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    R"sql(
-- Seeks of the subscription so far: each ack id carries it, so an ack id from before a seek names nothing.
ALTER TABLE subscriptions ADD COLUMN seeks INTEGER NOT NULL DEFAULT 0;
)sql",
    R"sql(
-- Only deliveries waiting to be leased are indexed by when they may go: a lease takes the row out of the index,
-- and an ack of a leased row touches no index entry. The writer keeps leased rows' deadlines in memory
-- (store/sqlite/lease_clock.h) and reads them from the rows after a start. msg_id, attempts and leased make it
-- covering for the lease query, which then reads no deliveries row.
-- With ordering keys, a lease skips the keys of leased messages: those are found by their own small index.
DROP INDEX deliveries_by_visibility;
CREATE INDEX deliveries_waiting ON deliveries(sub_id, visible_at, msg_id, attempts, leased) WHERE leased = 0;
CREATE INDEX deliveries_leased_keys ON deliveries(sub_id, ordering_key) WHERE leased = 1 AND ordering_key != '';
)sql",
};

}  // namespace

Status MigrateSqliteStore(SqliteDb& db) {
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

}  // namespace ferry
