// The PostgreSQL store: what deploys declare (functions, schedules, buckets) and their state.
#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "model/json_codec.h"
#include "store/postgres/pg_store.h"

namespace ferry {
namespace {

// The class of the advisory locks on buckets' names (the two-key form, apart from pg_store.cc's one-key locks).
constexpr int kBucketLockClass = 0x46657272;

}  // namespace

Status PgStore::ApplyDeployment(Deployment const& d) {
  return Txn([&](PgConn& db) -> Status {
    for (auto const& topic : d.create_topics) {
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO topics(name, spec) VALUES($1, $2) ON CONFLICT DO "
                                                 "NOTHING",
                                                 PgParams().Add(topic.name).Add(SafeDump(TopicToJson(topic)))));
      if (rows.Affected() == 0) return AlreadyExistsError("Topic already exists: " + topic.name);
    }
    for (auto const& name : d.delete_subscriptions) {
      FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, name));
      if (!sub) return NotFoundError("Subscription does not exist: " + name);
      FERRY_RETURN_IF_ERROR(DropSubscriptionRows(db, sub->id));
    }
    for (auto const& sub : d.create_subscriptions) {
      FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, sub.topic));
      if (!topic_id) return NotFoundError("Subscription topic does not exist: " + sub.topic);
      FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO subscriptions(name, topic_id, spec) VALUES($1, $2, $3) "
                                                 "ON CONFLICT DO NOTHING",
                                                 PgParams().Add(sub.name).Add(*topic_id)
                                                     .Add(SafeDump(SubscriptionToJson(sub)))));
      if (rows.Affected() == 0) return AlreadyExistsError("Subscription already exists: " + sub.name);
    }
    for (auto const& sub : d.update_subscriptions) {
      FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE subscriptions SET spec = $2 WHERE name = $1",
                                                 PgParams().Add(sub.name).Add(SafeDump(SubscriptionToJson(sub)))));
      if (rows.Affected() == 0) return NotFoundError("Subscription does not exist: " + sub.name);
    }
    for (auto const& name : d.delete_functions) {
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM functions WHERE name = $1", PgParams().Add(name)));
    }
    for (auto const& name : d.delete_buckets) {
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM buckets WHERE name = $1", PgParams().Add(name)));
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM bucket_objects WHERE bucket = $1", PgParams().Add(name)));
    }
    for (auto const& b : d.put_buckets) {
      FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO buckets(name, project, path, versioning) VALUES($1, $2, $3, $4) "
                                   "ON CONFLICT(name) DO UPDATE SET project = excluded.project, path = excluded.path, "
                                   "versioning = excluded.versioning",
                                   PgParams().Add(b.name).Add(b.project).Add(b.path).AddBool(b.versioning)));
    }
    for (auto const& name : d.delete_schedules) {
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM schedules WHERE name = $1", PgParams().Add(name)));
    }
    for (auto const& s : d.put_schedules) {
      FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO schedules(name, spec, next_fire) VALUES($1, $2, $3) ON CONFLICT(name) "
                                   "DO UPDATE SET spec = excluded.spec, next_fire = CASE WHEN schedules.paused THEN "
                                   "schedules.next_fire ELSE excluded.next_fire END",
                                   PgParams().Add(s.name).Add(s.spec).Add(s.next_fire_ms)));
    }
    for (auto const& fn : d.put_functions) {
      FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO functions(name, spec) VALUES($1, $2) ON CONFLICT(name) DO UPDATE SET "
                                   "spec = excluded.spec",
                                   PgParams().Add(fn.name).Add(fn.spec)));
    }
    return OkStatus();
  });
}

StatusOr<std::vector<FunctionRecord>> PgStore::ListFunctions() {
  std::vector<FunctionRecord> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, spec FROM functions ORDER BY name"));
    for (int i = 0; i < rows.size(); ++i) out.push_back({rows.Text(i, 0), rows.Text(i, 1)});
    return OkStatus();
  }));
  return out;
}

StatusOr<std::vector<BucketRecord>> PgStore::ListBuckets() {
  std::vector<BucketRecord> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, project, path, versioning FROM buckets ORDER BY name"));
    for (int i = 0; i < rows.size(); ++i) {
      out.push_back({rows.Text(i, 0), rows.Text(i, 1), rows.Text(i, 2), rows.Bool(i, 3)});
    }
    return OkStatus();
  }));
  return out;
}

StatusOr<std::map<std::string, std::string>> PgStore::BucketObjects(std::string const& bucket) {
  std::map<std::string, std::string> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, object FROM bucket_objects WHERE bucket = $1",
                                               PgParams().Add(bucket)));
    for (int i = 0; i < rows.size(); ++i) out.emplace(rows.Text(i, 0), rows.Text(i, 1));
    return OkStatus();
  }));
  return out;
}

// In the caller's transaction: publishes `events` to `topic` and applies `changes`. Returns whether it published.
StatusOr<bool> PgStore::ApplyBucketEvents(PgConn& db, std::string const& bucket,
                                          std::vector<BucketObjectChange> const& changes, std::string const& topic,
                                          std::vector<PubsubMessage> const& events, int64_t now_ms) {
  if (!events.empty()) {
    FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
    if (!topic_id) return NotFoundError("Topic " + topic + " does not exist");
    FERRY_RETURN_IF_ERROR(InsertMessages(db, *topic_id, topic, events, now_ms));
  }
  for (auto const& c : changes) {
    if (c.object) {
      FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO bucket_objects(bucket, name, object) VALUES($1, $2, $3) "
                                   "ON CONFLICT(bucket, name) DO UPDATE SET object = excluded.object",
                                   PgParams().Add(bucket).Add(c.name).Add(*c.object)));
    } else {
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM bucket_objects WHERE bucket = $1 AND name = $2",
                                   PgParams().Add(bucket).Add(c.name)));
    }
  }
  return !events.empty();
}

Status PgStore::RecordBucketEvents(std::string const& bucket, std::vector<BucketObjectChange> const& changes,
                                   std::string const& topic, std::vector<PubsubMessage> const& events,
                                   int64_t now_ms) {
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(LockBucket(db, bucket));
    return ApplyBucketEvents(db, bucket, changes, topic, events, now_ms).status();
  }));
  if (!events.empty()) Notify(topic);
  return OkStatus();
}

StatusOr<std::optional<std::string>> PgStore::BucketObject(std::string const& bucket, std::string const& name) {
  std::optional<std::string> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT object FROM bucket_objects WHERE bucket = $1 AND name = $2",
                                               PgParams().Add(bucket).Add(name)));
    if (rows.size() > 0) out = rows.Text(0, 0);
    return OkStatus();
  }));
  return out;
}

// Updates of one bucket's objects take turns (an advisory lock on the bucket's name, in a key space of its own):
// the row of an object not yet recorded cannot be locked, and two nodes must not both find it new.
Status PgStore::LockBucket(PgConn& db, std::string const& bucket) {
  return db.Run("SELECT pg_advisory_xact_lock($1::int4, hashtext($2))", PgParams().Add(kBucketLockClass).Add(bucket));
}

Status PgStore::UpdateBucketObject(std::string const& bucket, std::string const& name, std::string const& topic,
                                   std::function<BucketObjectUpdate(std::optional<std::string> const&)> const& decide,
                                   int64_t now_ms) {
  bool published = false;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(LockBucket(db, bucket));
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT object FROM bucket_objects WHERE bucket = $1 AND name = $2",
                                               PgParams().Add(bucket).Add(name)));
    std::optional<std::string> stored;
    if (rows.size() > 0) stored = rows.Text(0, 0);
    BucketObjectUpdate update = decide(stored);
    FERRY_ASSIGN_OR_RETURN(published, ApplyBucketEvents(db, bucket, update.changes, topic, update.events, now_ms));
    return OkStatus();
  }));
  if (published) Notify(topic);
  return OkStatus();
}

StatusOr<std::vector<ScheduleRecord>> PgStore::ListSchedules() {
  std::vector<ScheduleRecord> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name, spec, next_fire, last_fired, paused FROM schedules "
                                               "ORDER BY name"));
    for (int i = 0; i < rows.size(); ++i) {
      out.push_back({rows.Text(i, 0), rows.Text(i, 1), rows.Int(i, 2), rows.Int(i, 3), rows.Bool(i, 4)});
    }
    return OkStatus();
  }));
  return out;
}

// The schedule's row is locked for the transaction: of nodes firing the same tick at once, one publishes and
// records it; the others then find it fired. The publish and the record commit together.
StatusOr<bool> PgStore::FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                                     std::string const& topic, PubsubMessage const* message, int64_t now_ms) {
  bool fired = false;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    fired = false;
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT last_fired FROM schedules WHERE name = $1 FOR UPDATE",
                                               PgParams().Add(name)));
    if (rows.empty()) return NotFoundError("Schedule " + name + " does not exist");
    if (rows.Int(0, 0) >= tick_ms) return OkStatus();  // fired already (by this node before a restart, or another)
    if (message != nullptr) {
      FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
      if (!topic_id) return NotFoundError("Topic " + topic + " does not exist");
      FERRY_RETURN_IF_ERROR(InsertMessages(db, *topic_id, topic, {*message}, now_ms));
    }
    FERRY_RETURN_IF_ERROR(db.Run("UPDATE schedules SET last_fired = $2, next_fire = $3 WHERE name = $1",
                                 PgParams().Add(name).Add(tick_ms).Add(next_fire_ms)));
    fired = true;
    return OkStatus();
  }));
  if (fired && message != nullptr) Notify(topic);
  return fired;
}

Status PgStore::SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE schedules SET paused = $2, next_fire = $3 WHERE name = $1",
                                               PgParams().Add(name).AddBool(paused).Add(next_fire_ms)));
    if (rows.Affected() == 0) return NotFoundError("Schedule " + name + " does not exist");
    return OkStatus();
  });
}

// One statement: the upsert takes the row lock, so of two nodes claiming at once one wins.
namespace {
// Takes or renews one claim within a transaction (Claim's statement).
StatusOr<bool> ClaimIn(PgConn& db, std::string const& name, std::string const& node, int64_t now_ms,
                       int64_t until_ms) {
  FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO claims(name, node, until) VALUES($1, $2, $3) ON "
                                             "CONFLICT(name) DO UPDATE SET node = excluded.node, until = "
                                             "excluded.until WHERE claims.node = excluded.node OR claims.until < $4 "
                                             "RETURNING node",
                                             PgParams().Add(name).Add(node).Add(until_ms).Add(now_ms)));
  return !rows.empty();
}
}  // namespace

StatusOr<bool> PgStore::Claim(std::string const& name, std::string const& node, int64_t now_ms, int64_t until_ms) {
  bool held = false;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(held, ClaimIn(db, name, node, now_ms, until_ms));
    return OkStatus();
  }));
  return held;
}

StatusOr<int> PgStore::CountClaims(std::string const& prefix, int64_t now_ms) {
  int count = 0;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT count(*) FROM claims WHERE starts_with(name, $1) AND until >= $2",
                                               PgParams().Add(prefix).Add(now_ms)));
    count = static_cast<int>(rows.Int(0, 0));
    return OkStatus();
  }));
  return count;
}

StatusOr<std::vector<std::string>> PgStore::RenewClaims(std::vector<std::string> const& names,
                                                        std::string const& node, int64_t now_ms, int64_t until_ms) {
  std::vector<std::string> lost;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    lost.clear();
    for (auto const& name : names) {
      FERRY_ASSIGN_OR_RETURN(bool held, ClaimIn(db, name, node, now_ms, until_ms));
      if (!held) lost.push_back(name);
    }
    return OkStatus();
  }));
  return lost;
}

// The free slots are read, then taken one by one with the claim's upsert (which waits for, and then sees, a
// concurrent taker's commit): of nodes taking the same slot at once, one gets it and the others try the next.
StatusOr<std::optional<std::string>> PgStore::ClaimOne(std::string const& prefix, int count, std::string const& node,
                                                      int64_t now_ms, int64_t until_ms) {
  std::optional<std::string> taken;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    taken.reset();
    FERRY_ASSIGN_OR_RETURN(auto free, db.Query("SELECT $1 || s FROM generate_series(0, $2::int8 - 1) s WHERE NOT "
                                               "EXISTS (SELECT 1 FROM claims c WHERE c.name = $1 || s AND c.until >= $3)",
                                               PgParams().Add(prefix).Add(int64_t{count}).Add(now_ms)));
    for (int i = 0; i < free.size() && !taken; ++i) {
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO claims(name, node, until) VALUES($1, $2, $3) ON "
                                                 "CONFLICT(name) DO UPDATE SET node = excluded.node, until = "
                                                 "excluded.until WHERE claims.until < $4 RETURNING node",
                                                 PgParams().Add(free.Text(i, 0)).Add(node).Add(until_ms).Add(now_ms)));
      if (!rows.empty()) taken = free.Text(i, 0);
    }
    return OkStatus();
  }));
  return taken;
}

Status PgStore::Release(std::string const& name, std::string const& node) {
  return Txn([&](PgConn& db) -> Status {
    return db.Run("DELETE FROM claims WHERE name = $1 AND node = $2", PgParams().Add(name).Add(node));
  });
}

// A node's report replaces its last; reports an hour past their end go (a restarted node is a new node).
Status PgStore::ReportNode(std::string const& node, std::string const& status, int64_t until_ms) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(db.Run("INSERT INTO nodes(node, until, status) VALUES($1, $2, $3) ON CONFLICT(node) DO "
                                 "UPDATE SET until = excluded.until, status = excluded.status",
                                 PgParams().Add(node).Add(until_ms).Add(status)));
    return db.Run("DELETE FROM nodes WHERE until < $1", PgParams().Add(until_ms - 3'600'000));
  });
}

StatusOr<std::vector<NodeReport>> PgStore::LiveNodes(int64_t now_ms) {
  std::vector<NodeReport> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT node, status FROM nodes WHERE until >= $1 ORDER BY node",
                                               PgParams().Add(now_ms)));
    for (int i = 0; i < rows.size(); ++i) out.push_back({rows.Text(i, 0), rows.Text(i, 1)});
    return OkStatus();
  }));
  return out;
}

}  // namespace ferry
