// The embedded store: what deploys declare (functions, schedules, buckets) and their state.
#include "store/sqlite/sqlite_store.h"

#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "model/json_codec.h"

namespace ferry {

Status SqliteStore::ApplyDeployment(Deployment const& d) {
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

StatusOr<std::vector<FunctionRecord>> SqliteStore::ListFunctions() {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, spec FROM functions ORDER BY name"));
  std::vector<FunctionRecord> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back({st->Text(0), st->Text(1)});
  }
  return out;
}

StatusOr<std::vector<BucketRecord>> SqliteStore::ListBuckets() {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, project, path, versioning FROM buckets ORDER BY "
                                                  "name"));
  std::vector<BucketRecord> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back({st->Text(0), st->Text(1), st->Text(2), st->Int(3) != 0});
  }
  return out;
}

StatusOr<std::map<std::string, std::string>> SqliteStore::BucketObjects(std::string const& bucket) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, object FROM bucket_objects WHERE bucket = ?1"));
  st->Bind(1, bucket);
  std::map<std::string, std::string> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.emplace(st->Text(0), st->Text(1));
  }
  return out;
}

// In the caller's transaction on the writer thread: publishes `events` to `topic` and applies `changes`.
Status SqliteStore::ApplyBucketEvents(SqliteDb& db, std::string const& bucket,
                                      std::vector<BucketObjectChange> const& changes, std::string const& topic,
                                      std::vector<PubsubMessage> const& events, int64_t now_ms) {
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
}

Status SqliteStore::RecordBucketEvents(std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                                       std::string const& topic, std::vector<PubsubMessage> const& events,
                                       int64_t now_ms) {
  return Write([&](SqliteDb& db) { return ApplyBucketEvents(db, bucket, changes, topic, events, now_ms); });
}

namespace {

StatusOr<std::optional<std::string>> ReadBucketObject(SqliteDb& db, std::string const& bucket,
                                                      std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT object FROM bucket_objects WHERE bucket = ?1 AND name = ?2"));
  st->Bind(1, bucket).Bind(2, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st->Text(0));
}

}  // namespace

StatusOr<std::optional<std::string>> SqliteStore::BucketObject(std::string const& bucket, std::string const& name) {
  auto reader = Read();
  return ReadBucketObject(*reader.db, bucket, name);
}

// Writes run one at a time on the writer thread: the read and the write below cannot interleave with another.
Status SqliteStore::UpdateBucketObject(std::string const& bucket, std::string const& name, std::string const& topic,
                                       std::function<BucketObjectUpdate(std::optional<std::string> const&)> const& decide,
                                       int64_t now_ms) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto stored, ReadBucketObject(db, bucket, name));
    BucketObjectUpdate update = decide(stored);
    return ApplyBucketEvents(db, bucket, update.changes, topic, update.events, now_ms);
  });
}

StatusOr<std::vector<ScheduleRecord>> SqliteStore::ListSchedules() {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name, spec, next_fire, last_fired, paused FROM "
                                                  "schedules ORDER BY name"));
  std::vector<ScheduleRecord> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back({st->Text(0), st->Text(1), st->Int(2), st->Int(3), st->Int(4) != 0});
  }
  return out;
}

StatusOr<bool> SqliteStore::FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                                         std::string const& topic, PubsubMessage const* message, int64_t now_ms) {
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

Status SqliteStore::SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE schedules SET paused = ?2, next_fire = ?3 WHERE name = ?1"));
    FERRY_RETURN_IF_ERROR(st->Bind(1, name).Bind(2, paused ? 1 : 0).Bind(3, next_fire_ms).Exec());
    if (db.Changes() == 0) return NotFoundError("Schedule " + name + " does not exist");
    return OkStatus();
  });
}

namespace {
// Takes or renews one claim within a write (Claim's statement).
StatusOr<bool> ClaimIn(SqliteDb& db, std::string const& name, std::string const& node, int64_t now_ms,
                       int64_t until_ms) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO claims(name, node, until) VALUES(?1, ?2, ?3) ON "
                                             "CONFLICT(name) DO UPDATE SET node = excluded.node, until = "
                                             "excluded.until WHERE claims.node = excluded.node OR claims.until < ?4 "
                                             "RETURNING node"));
  st->Bind(1, name).Bind(2, node).Bind(3, until_ms).Bind(4, now_ms);
  return st->Step();
}
}  // namespace

StatusOr<bool> SqliteStore::Claim(std::string const& name, std::string const& node, int64_t now_ms,
                                  int64_t until_ms) {
  bool held = false;
  FERRY_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(held, ClaimIn(db, name, node, now_ms, until_ms));
    return OkStatus();
  }, /*durable=*/false));  // as a lease is: one lost in a crash runs out
  return held;
}

StatusOr<int> SqliteStore::CountClaims(std::string const& prefix, int64_t now_ms) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT count(*) FROM claims WHERE substr(name, 1, length(?1)) = "
                                                  "?1 AND until >= ?2"));
  st->Bind(1, prefix).Bind(2, now_ms);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  return row ? static_cast<int>(st->Int(0)) : 0;
}

StatusOr<std::vector<std::string>> SqliteStore::RenewClaims(std::vector<std::string> const& names,
                                                            std::string const& node, int64_t now_ms,
                                                            int64_t until_ms) {
  std::vector<std::string> lost;
  FERRY_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    lost.clear();
    for (auto const& name : names) {
      FERRY_ASSIGN_OR_RETURN(bool held, ClaimIn(db, name, node, now_ms, until_ms));
      if (!held) lost.push_back(name);
    }
    return OkStatus();
  }, /*durable=*/false));
  return lost;
}

StatusOr<std::optional<std::string>> SqliteStore::ClaimOne(std::string const& prefix, int count,
                                                          std::string const& node, int64_t now_ms, int64_t until_ms) {
  std::optional<std::string> taken;
  FERRY_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {  // writes take turns: reading then taking is safe
    taken.reset();
    for (int i = 0; i < count && !taken; ++i) {
      std::string name = prefix + std::to_string(i);
      FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO claims(name, node, until) VALUES(?1, ?2, ?3) ON "
                                                 "CONFLICT(name) DO UPDATE SET node = excluded.node, until = "
                                                 "excluded.until WHERE claims.until < ?4 RETURNING node"));
      st->Bind(1, name).Bind(2, node).Bind(3, until_ms).Bind(4, now_ms);
      FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
      if (row) taken = name;
    }
    return OkStatus();
  }, /*durable=*/false));
  return taken;
}

Status SqliteStore::Release(std::string const& name, std::string const& node) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM claims WHERE name = ?1 AND node = ?2"));
    return st->Bind(1, name).Bind(2, node).Exec();
  }, /*durable=*/false);
}

// A node's report replaces its last; reports an hour past their end go (a restarted node is a new node).
Status SqliteStore::ReportNode(std::string const& node, std::string const& status, int64_t until_ms) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto put, db.Prepare("INSERT OR REPLACE INTO nodes(node, until, status) VALUES(?1, ?2, ?3)"));
    FERRY_RETURN_IF_ERROR(put->Bind(1, node).Bind(2, until_ms).Bind(3, status).Exec());
    FERRY_ASSIGN_OR_RETURN(auto old, db.Prepare("DELETE FROM nodes WHERE until < ?1"));
    return old->Bind(1, until_ms - 3'600'000).Exec();
  }, /*durable=*/false);
}

StatusOr<std::vector<NodeReport>> SqliteStore::LiveNodes(int64_t now_ms) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT node, status FROM nodes WHERE until >= ?1 ORDER BY node"));
  st->Bind(1, now_ms);
  std::vector<NodeReport> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back({st->Text(0), st->Text(1)});
  }
  return out;
}

}  // namespace ferry
