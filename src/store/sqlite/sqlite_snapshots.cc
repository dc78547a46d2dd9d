// The embedded store: snapshots and seek.
#include "store/sqlite/sqlite_store.h"

#include <algorithm>

#include "common/status_macros.h"

namespace ferry {

SeekSql::SeekSql(std::string const& keep)
    : back("INSERT OR IGNORE INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) SELECT "
           "sub_id, msg_id, publish_time, ?4, CASE WHEN ?5 THEN (SELECT ordering_key FROM messages WHERE "
           "id = msg_id) ELSE '' END FROM acked WHERE sub_id = ?1 AND (" + keep + ")"),
      forget("DELETE FROM acked WHERE sub_id = ?1 AND (" + keep + ")"),
      rest("SELECT msg_id FROM deliveries WHERE sub_id = ?1 AND NOT (" + keep + ")") {}

StatusOr<Snapshot> SqliteStore::CreateSnapshot(Snapshot const& snapshot, std::string const& subscription,
                                               int64_t now_ms) {
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

StatusOr<Snapshot> SqliteStore::GetSnapshot(std::string const& name) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, topic, expire, labels FROM snapshots "
                                                  "WHERE name = ?1"));
  st->Bind(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return NotFoundError("Snapshot does not exist");
  return DecodeSnapshot(*st);
}

Status SqliteStore::UpdateSnapshot(Snapshot const& snapshot) {
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

Status SqliteStore::DeleteSnapshot(std::string const& name) {
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

StatusOr<std::vector<Snapshot>> SqliteStore::ListSnapshots(std::string const& project, Page page) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, topic, expire, labels FROM snapshots WHERE "
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

StatusOr<std::vector<std::string>> SqliteStore::ListTopicSnapshots(std::string const& topic, Page page) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto find, reader->Prepare("SELECT 1 FROM topics WHERE name = ?1"));
  find->Bind(1, topic);
  FERRY_ASSIGN_OR_RETURN(bool found, find->Step());
  find->Reset();
  if (!found) return NotFoundError("Topic not found");
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name FROM snapshots WHERE topic = ?1 AND name > ?2 "
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

Status SqliteStore::SeekToTime(std::string const& subscription, int64_t time_ms, int64_t now_ms) {
  return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {  // its seek count
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    return Seek(db, *sub, SeekToTimeSql(), time_ms, 0, now_ms);
  }));
}

Status SqliteStore::SeekToSnapshot(std::string const& subscription, std::string const& snapshot, int64_t now_ms) {
  return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {  // its seek count
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
  }));
}

StatusOr<Snapshot> SqliteStore::DecodeSnapshot(SqliteStmt& st) {
  Snapshot s;
  s.name = st.Text(0);
  s.topic = st.Text(1);
  s.expire_time_ms = st.Int(2);
  FERRY_ASSIGN_OR_RETURN(s.labels, DecodeAttributes(st.Text(3)));
  return s;
}

SeekSql const& SqliteStore::SeekToTimeSql() {
  static SeekSql const sql("publish_time >= ?2");
  return sql;
}

SeekSql const& SqliteStore::SeekToSnapshotSql() {
  static SeekSql const sql("publish_time >= ?2 OR msg_id IN (SELECT msg_id FROM snapshot_messages WHERE snap_id = ?3)");
  return sql;
}

// Seek: the subscription's messages for which the statements' condition holds (with parameters `p2` and `p3`)
// become unacknowledged and deliverable now; the rest acknowledged. Ack ids handed out before it name nothing
// after it.
Status SqliteStore::Seek(SqliteDb& db, SubRow const& sub, SeekSql const& sql, int64_t p2, int64_t p3, int64_t now_ms) {
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
  FERRY_RETURN_IF_ERROR(now->Bind(1, sub.id).Bind(2, now_ms).Exec());
  ForgetExtensions(sub.id);
  lease_clock_.StartScan(sub.id);  // none of its rows is leased now
  FERRY_ASSIGN_OR_RETURN(auto count, db.Prepare("UPDATE subscriptions SET seeks = seeks + 1 WHERE id = ?1"));
  return count->Bind(1, sub.id).Exec();
}

}  // namespace ferry
