// The PostgreSQL store: snapshots and seek.
#include <algorithm>

#include "common/status_macros.h"
#include "store/postgres/pg_store.h"
#include "store/stored_json.h"

namespace ferry {
namespace {

StatusOr<Snapshot> SnapshotAt(PgRows const& rows, int i) {
  Snapshot s;
  s.name = rows.Text(i, 0);
  s.topic = rows.Text(i, 1);
  s.expire_time_ms = rows.Int(i, 2);
  FERRY_ASSIGN_OR_RETURN(s.labels, DecodeAttributes(rows.Text(i, 3)));
  return s;
}

}  // namespace

StatusOr<Snapshot> PgStore::CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                           int64_t now_ms) {
  Snapshot created = snapshot;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    if (sub->spec.topic == kDeletedTopic) return FailedPreconditionError("The subscription's topic was deleted");
    // It lives until its oldest message is 7 days old, as in Pub/Sub.
    FERRY_ASSIGN_OR_RETURN(auto oldest, db.Query("SELECT MIN(publish_time) FROM deliveries WHERE sub_id = $1",
                                                 PgParams().Add(sub->id)));
    int64_t from = oldest.IsNull(0, 0) ? now_ms : std::min(oldest.Int(0, 0), now_ms);
    created.topic = sub->spec.topic;
    created.expire_time_ms = from + kSnapshotLifetimeMillis;
    FERRY_ASSIGN_OR_RETURN(auto ins, db.Query("INSERT INTO snapshots(name, topic, created, expire, labels) "
                                              "VALUES($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
                                              PgParams().Add(created.name).Add(created.topic).Add(now_ms)
                                                  .Add(created.expire_time_ms).Add(EncodeAttributes(created.labels))));
    if (ins.empty()) return AlreadyExistsError("Snapshot already exists");
    return db.Run("INSERT INTO snapshot_messages(snap_id, msg_id, publish_time) SELECT $2, msg_id, publish_time "
                  "FROM deliveries WHERE sub_id = $1",
                  PgParams().Add(sub->id).Add(ins.Int(0, 0)));
  }));
  return created;
}

StatusOr<Snapshot> PgStore::GetSnapshot(std::string const& name) {
  std::optional<Snapshot> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, topic, expire, labels FROM snapshots WHERE name = $1",
                                               PgParams().Add(name)));
    if (rows.empty()) return NotFoundError("Snapshot does not exist");
    FERRY_ASSIGN_OR_RETURN(out, SnapshotAt(rows, 0));
    return OkStatus();
  }));
  return *std::move(out);
}

Status PgStore::UpdateSnapshot(Snapshot const& snapshot) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE snapshots SET expire = $2, labels = $3 WHERE name = $1",
                                               PgParams().Add(snapshot.name).Add(snapshot.expire_time_ms)
                                                   .Add(EncodeAttributes(snapshot.labels))));
    if (rows.Affected() == 0) return NotFoundError("Snapshot does not exist");
    return OkStatus();
  });
}

Status PgStore::DeleteSnapshot(std::string const& name) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("DELETE FROM snapshots WHERE name = $1 RETURNING id",
                                               PgParams().Add(name)));
    if (rows.empty()) return NotFoundError("Snapshot does not exist");
    return db.Run("DELETE FROM snapshot_messages WHERE snap_id = $1", PgParams().Add(rows.Int(0, 0)));
  });
}

StatusOr<std::vector<Snapshot>> PgStore::ListSnapshots(std::string const& project, Page page) {
  std::vector<Snapshot> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, topic, expire, labels FROM snapshots WHERE name > $1 "
                                               "AND starts_with(name, $2) ORDER BY name LIMIT $3",
                                               PgParams().Add(page.after).Add("projects/" + project + "/snapshots/")
                                                   .Add(int64_t{page.limit})));
    for (int i = 0; i < rows.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(auto s, SnapshotAt(rows, i));
      out.push_back(std::move(s));
    }
    return OkStatus();
  }));
  return out;
}

StatusOr<std::vector<std::string>> PgStore::ListTopicSnapshots(std::string const& topic, Page page) {
  std::vector<std::string> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, topic));
    if (!id) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name FROM snapshots WHERE topic = $1 AND name > $2 "
                                               "ORDER BY name LIMIT $3",
                                               PgParams().Add(topic).Add(page.after).Add(int64_t{page.limit})));
    for (int i = 0; i < rows.size(); ++i) out.push_back(rows.Text(i, 0));
    return OkStatus();
  }));
  return out;
}

Status PgStore::SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) {
  int64_t sub_id = 0;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    sub_id = sub->id;
    return Seek(db, *sub, time_ms, std::nullopt, now_ms);
  }));
  ForgetScanFrom(sub_id);  // messages came back anywhere in the range
  return OkStatus();
}

Status PgStore::SeekToSnapshot(std::string const& subscription, std::string const& snapshot, int64_t now_ms) {
  int64_t sub_id = 0;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    sub_id = sub->id;
    FERRY_ASSIGN_OR_RETURN(auto snap, db.Query("SELECT id, topic, created FROM snapshots WHERE name = $1",
                                               PgParams().Add(snapshot)));
    if (snap.empty()) return NotFoundError("Snapshot does not exist");
    int64_t snap_id = snap.Int(0, 0), created = snap.Int(0, 2);
    std::string topic = snap.Text(0, 1);
    if (topic != sub->spec.topic) {
      return FailedPreconditionError("The snapshot's topic (" + topic + ") is not the subscription's topic (" +
                                     sub->spec.topic + ")");
    }
    // Snapshot messages this subscription no longer holds at all come back as new copies.
    FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) "
                                 "SELECT $1, s.msg_id, s.publish_time, $3, CASE WHEN $4 THEN m.ordering_key ELSE '' "
                                 "END FROM snapshot_messages s JOIN messages m ON m.id = s.msg_id WHERE s.snap_id = "
                                 "$2 AND NOT EXISTS (SELECT 1 FROM acked a WHERE a.sub_id = $1 AND a.msg_id = "
                                 "s.msg_id) ON CONFLICT DO NOTHING",
                                 PgParams().Add(sub->id).Add(snap_id).Add(now_ms)
                                     .AddBool(sub->spec.enable_message_ordering)));
    return Seek(db, *sub, created, snap_id, now_ms);
  }));
  ForgetScanFrom(sub_id);  // messages came back anywhere in the range
  return OkStatus();
}

// The subscription's messages published at or after `time_ms` (or in the snapshot) become unacknowledged and
// deliverable now; the rest acknowledged.
Status PgStore::Seek(PgConn& db, PgSub const& sub, int64_t time_ms, std::optional<int64_t> snap_id, int64_t now_ms) {
  // -1 names no snapshot (ids start at 1).
  PgParams keep = PgParams().Add(sub.id).Add(time_ms).Add(snap_id.value_or(-1));
  // Acknowledged messages kept for seek come back.
  FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) "
                               "SELECT a.sub_id, a.msg_id, a.publish_time, $4, CASE WHEN $5 THEN m.ordering_key "
                               "ELSE '' END FROM acked a JOIN messages m ON m.id = a.msg_id WHERE a.sub_id = $1 AND "
                               "(a.publish_time >= $2 OR a.msg_id IN (SELECT msg_id FROM snapshot_messages WHERE "
                               "snap_id = $3)) ON CONFLICT DO NOTHING",
                               PgParams().Add(sub.id).Add(time_ms).Add(snap_id.value_or(-1)).Add(now_ms)
                                   .AddBool(sub.spec.enable_message_ordering)));
  FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM acked WHERE sub_id = $1 AND (publish_time >= $2 OR msg_id IN (SELECT "
                               "msg_id FROM snapshot_messages WHERE snap_id = $3))",
                               keep));
  // The rest is acknowledged.
  FERRY_ASSIGN_OR_RETURN(auto rest, db.Query("SELECT msg_id FROM deliveries WHERE sub_id = $1 AND NOT "
                                             "(publish_time >= $2 OR msg_id IN (SELECT msg_id FROM snapshot_messages "
                                             "WHERE snap_id = $3))",
                                             keep));
  std::vector<int64_t> ids;
  for (int i = 0; i < rest.size(); ++i) ids.push_back(rest.Int(i, 0));
  FERRY_RETURN_IF_ERROR(RemoveDeliveries(db, sub, ids));
  FERRY_RETURN_IF_ERROR(db.Run("UPDATE deliveries SET visible_at = $2, leased = false WHERE sub_id = $1",
                               PgParams().Add(sub.id).Add(now_ms)));
  // Ack ids handed out before the seek name nothing after it.
  return db.Run("UPDATE subscriptions SET seeks = seeks + 1 WHERE id = $1", PgParams().Add(sub.id));
}

}  // namespace ferry
