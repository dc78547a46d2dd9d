// The embedded store: topics and subscriptions.
#include "store/sqlite/sqlite_store.h"

#include <limits>

#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "model/json_codec.h"

namespace ferry {

Status SqliteStore::CreateTopic(Topic const& topic) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto existing, FindTopicId(db, topic.name));
    if (existing) return AlreadyExistsError("Topic already exists");
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO topics(name, spec) VALUES(?1, ?2)"));
    return st->Bind(1, topic.name).Bind(2, SafeDump(TopicToJson(topic))).Exec();
  });
}

StatusOr<Topic> SqliteStore::GetTopic(std::string const& name) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT spec FROM topics WHERE name = ?1"));
  st->Bind(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return NotFoundError("Topic not found");
  return DecodeTopic(st->Text(0));
}

Status SqliteStore::UpdateTopic(Topic const& topic) {
  return Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE topics SET spec = ?2 WHERE name = ?1"));
    FERRY_RETURN_IF_ERROR(st->Bind(1, topic.name).Bind(2, SafeDump(TopicToJson(topic))).Exec());
    if (db.Changes() == 0) return NotFoundError("Topic not found");
    return OkStatus();
  });
}

Status SqliteStore::DeleteTopic(std::string const& name) {
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

StatusOr<std::vector<Topic>> SqliteStore::ListTopics(std::string const& project, Page page) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(
      auto st, reader->Prepare("SELECT spec FROM topics WHERE name > ?1 AND name >= ?2 AND name < ?3 "
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

StatusOr<std::vector<std::string>> SqliteStore::ListTopicSubscriptions(std::string const& topic, Page page) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto find, reader->Prepare("SELECT id FROM topics WHERE name = ?1"));
  find->Bind(1, topic);
  FERRY_ASSIGN_OR_RETURN(bool found, find->Step());
  if (!found) return NotFoundError("Topic not found");
  int64_t topic_id = find->Int(0);
  find->Reset();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT name FROM subscriptions WHERE topic_id = ?1 AND "
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

Status SqliteStore::CreateSubscription(Subscription const& sub) {
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

StatusOr<Subscription> SqliteStore::GetSubscription(std::string const& name) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT spec FROM subscriptions WHERE name = ?1"));
  st->Bind(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return NotFoundError("Subscription does not exist");
  return DecodeSub(st->Text(0));
}

Status SqliteStore::UpdateSubscription(Subscription const& sub) {
  return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, sub.name));
    if (!existing) return NotFoundError("Subscription does not exist");
    FERRY_RETURN_IF_ERROR(CheckDeadLetterTopic(db, sub));
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE subscriptions SET spec = ?2 WHERE id = ?1"));
    return st->Bind(1, existing->id).Bind(2, SafeDump(SubscriptionToJson(sub))).Exec();
  }));
}

Status SqliteStore::DeleteSubscription(std::string const& name) {
  return Write(ChangingSubscriptions([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto existing, FindSub(db, name));
    if (!existing) return NotFoundError("Subscription does not exist");
    FERRY_RETURN_IF_ERROR(DropDeliveries(db, existing->id, std::numeric_limits<int64_t>::max()));
    FERRY_RETURN_IF_ERROR(DropAcked(db, existing->id, std::numeric_limits<int64_t>::max()));
    lease_clock_.Forget(existing->id);
    FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("DELETE FROM subscriptions WHERE id = ?1"));
    return st->Bind(1, existing->id).Exec();
  }));
}

StatusOr<std::vector<Subscription>> SqliteStore::ListSubscriptions(std::string const& project, Page page) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT spec FROM subscriptions WHERE name > ?1 AND name "
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

StatusOr<std::vector<Subscription>> SqliteStore::ListPushSubscriptions() {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT spec FROM subscriptions WHERE spec LIKE "
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

}  // namespace ferry
