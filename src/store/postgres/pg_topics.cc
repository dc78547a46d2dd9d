// The PostgreSQL store: topics and subscriptions.
#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "model/json_codec.h"
#include "store/postgres/pg_store.h"
#include "store/stored_json.h"

namespace ferry {

Status PgStore::CreateTopic(Topic const& topic) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO topics(name, spec) VALUES($1, $2) ON CONFLICT DO NOTHING",
                                               PgParams().Add(topic.name).Add(SafeDump(TopicToJson(topic)))));
    if (rows.Affected() == 0) return AlreadyExistsError("Topic already exists");
    return OkStatus();
  });
}

StatusOr<Topic> PgStore::GetTopic(std::string const& name) {
  std::optional<Topic> topic;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT spec FROM topics WHERE name = $1", PgParams().Add(name)));
    if (rows.empty()) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(topic, DecodeTopic(rows.Text(0, 0)));
    return OkStatus();
  }));
  return *std::move(topic);
}

Status PgStore::UpdateTopic(Topic const& topic) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE topics SET spec = $2 WHERE name = $1",
                                               PgParams().Add(topic.name).Add(SafeDump(TopicToJson(topic)))));
    if (rows.Affected() == 0) return NotFoundError("Topic not found");
    return OkStatus();
  });
}

Status PgStore::DeleteTopic(std::string const& name) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto found, db.Query("SELECT id FROM topics WHERE name = $1 FOR UPDATE",
                                                PgParams().Add(name)));
    if (found.empty()) return NotFoundError("Topic not found");
    int64_t id = found.Int(0, 0);
    // Detach its subscriptions, as Pub/Sub does: they keep their backlog and show "_deleted-topic_".
    FERRY_ASSIGN_OR_RETURN(auto subs, db.Query("SELECT id, spec FROM subscriptions WHERE topic_id = $1 FOR UPDATE",
                                               PgParams().Add(id)));
    for (int i = 0; i < subs.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(subs.Text(i, 1)));
      spec.topic = kDeletedTopic;
      FERRY_RETURN_IF_ERROR(db.Run("UPDATE subscriptions SET topic_id = NULL, spec = $2 WHERE id = $1",
                                   PgParams().Add(subs.Int(i, 0)).Add(SafeDump(SubscriptionToJson(spec)))));
    }
    return db.Run("DELETE FROM topics WHERE id = $1", PgParams().Add(id));
  });
}

StatusOr<std::vector<Topic>> PgStore::ListTopics(std::string const& project, Page page) {
  std::vector<Topic> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT spec FROM topics WHERE name > $1 AND starts_with(name, $2) "
                                               "ORDER BY name LIMIT $3",
                                               PgParams().Add(page.after).Add("projects/" + project + "/topics/")
                                                   .Add(int64_t{page.limit})));
    for (int i = 0; i < rows.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(auto topic, DecodeTopic(rows.Text(i, 0)));
      out.push_back(std::move(topic));
    }
    return OkStatus();
  }));
  return out;
}

StatusOr<std::vector<std::string>> PgStore::ListTopicSubscriptions(std::string const& topic, Page page) {
  std::vector<std::string> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, topic));
    if (!id) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT name FROM subscriptions WHERE topic_id = $1 AND name > $2 "
                                               "ORDER BY name LIMIT $3",
                                               PgParams().Add(*id).Add(page.after).Add(int64_t{page.limit})));
    for (int i = 0; i < rows.size(); ++i) out.push_back(rows.Text(i, 0));
    return OkStatus();
  }));
  return out;
}

Status PgStore::CreateSubscription(Subscription const& sub) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, sub.topic));
    if (!topic_id) return NotFoundError("Subscription topic does not exist");
    FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("INSERT INTO subscriptions(name, topic_id, spec) VALUES($1, $2, $3) "
                                               "ON CONFLICT DO NOTHING",
                                               PgParams().Add(sub.name).Add(*topic_id)
                                                   .Add(SafeDump(SubscriptionToJson(sub)))));
    if (rows.Affected() == 0) return AlreadyExistsError("Subscription already exists");
    return OkStatus();
  });
}

StatusOr<Subscription> PgStore::GetSubscription(std::string const& name) {
  std::optional<Subscription> sub;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT spec FROM subscriptions WHERE name = $1", PgParams().Add(name)));
    if (rows.empty()) return NotFoundError("Subscription does not exist");
    FERRY_ASSIGN_OR_RETURN(sub, DecodeSub(rows.Text(0, 0)));
    return OkStatus();
  }));
  return *std::move(sub);
}

Status PgStore::UpdateSubscription(Subscription const& sub) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE subscriptions SET spec = $2 WHERE name = $1",
                                               PgParams().Add(sub.name).Add(SafeDump(SubscriptionToJson(sub)))));
    if (rows.Affected() == 0) return NotFoundError("Subscription does not exist");
    return OkStatus();
  });
}

Status PgStore::DeleteSubscription(std::string const& name) {
  return Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, name));
    if (!sub) return NotFoundError("Subscription does not exist");
    return DropSubscriptionRows(db, sub->id);
  });
}

StatusOr<std::vector<Subscription>> PgStore::ListSubscriptions(std::string const& project, Page page) {
  std::vector<Subscription> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT spec FROM subscriptions WHERE name > $1 AND "
                                               "starts_with(name, $2) ORDER BY name LIMIT $3",
                                               PgParams().Add(page.after).Add("projects/" + project +
                                                                              "/subscriptions/")
                                                   .Add(int64_t{page.limit})));
    for (int i = 0; i < rows.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(auto sub, DecodeSub(rows.Text(i, 0)));
      out.push_back(std::move(sub));
    }
    return OkStatus();
  }));
  return out;
}

StatusOr<std::vector<Subscription>> PgStore::ListPushSubscriptions() {
  std::vector<Subscription> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT spec FROM subscriptions WHERE spec LIKE "
                                               "'%\"pushEndpoint\"%' ORDER BY name"));
    for (int i = 0; i < rows.size(); ++i) {
      FERRY_ASSIGN_OR_RETURN(auto sub, DecodeSub(rows.Text(i, 0)));
      if (!sub.push_config.push_endpoint.empty()) out.push_back(std::move(sub));
    }
    return OkStatus();
  }));
  return out;
}

}  // namespace ferry
