// `ferry topics`, `subscriptions`, `publish` and `pull`: gcloud pubsub's commands, over the Pub/Sub REST API.
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "common/status_macros.h"
#include "common/base64.h"
#include "common/time_util.h"

namespace ferry {
namespace {

struct SubscriptionFlags {
  std::string topic;
  int ack_deadline = 0;
  std::string dead_letter_topic;
  int max_delivery_attempts = 0;
  std::string min_retry_delay;
  std::string max_retry_delay;
  std::string retention;
  bool clear_dead_letter = false;
  bool clear_retry = false;
};

void AddSubscriptionFlags(CLI::App* cmd, SubscriptionFlags& f, bool update) {
  if (!update) cmd->add_option("--topic", f.topic, "Topic to subscribe to")->required();
  cmd->add_option("--ack-deadline", f.ack_deadline, "Seconds a subscriber has to ack (10-600)");
  cmd->add_option("--dead-letter-topic", f.dead_letter_topic, "Topic for messages that keep failing");
  cmd->add_option("--max-delivery-attempts", f.max_delivery_attempts, "Deliveries before dead-lettering (5-100)");
  cmd->add_option("--min-retry-delay", f.min_retry_delay, "Backoff after the first failure, e.g. 10s, 2m");
  cmd->add_option("--max-retry-delay", f.max_retry_delay, "Longest backoff, e.g. 600s");
  cmd->add_option("--message-retention-duration", f.retention, "How long unacked messages are kept, e.g. 7d");
  if (update) {
    cmd->add_flag("--clear-dead-letter-policy", f.clear_dead_letter, "Remove the dead-letter policy");
    cmd->add_flag("--clear-retry-policy", f.clear_retry, "Remove the retry policy");
  }
}

// The subscription body and update mask the flags describe.
StatusOr<std::pair<Json, std::vector<std::string>>> SubscriptionBody(Cli& cli, SubscriptionFlags const& f) {
  Json body;
  std::vector<std::string> mask;
  if (!f.topic.empty()) {
    FERRY_ASSIGN_OR_RETURN(body["topic"], cli.Name(f.topic, "topics"));
  }
  if (f.ack_deadline != 0) {
    body["ackDeadlineSeconds"] = f.ack_deadline;
    mask.push_back("ackDeadlineSeconds");
  }
  if (!f.retention.empty()) {
    FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.retention));
    body["messageRetentionDuration"] = FormatProtoDuration(ms);
    mask.push_back("messageRetentionDuration");
  }
  if (!f.dead_letter_topic.empty()) {
    Json dlp;
    FERRY_ASSIGN_OR_RETURN(dlp["deadLetterTopic"], cli.Name(f.dead_letter_topic, "topics"));
    if (f.max_delivery_attempts != 0) dlp["maxDeliveryAttempts"] = f.max_delivery_attempts;
    body["deadLetterPolicy"] = dlp;
    mask.push_back("deadLetterPolicy");
  } else if (f.max_delivery_attempts != 0) {
    return InvalidArgumentError("--max-delivery-attempts needs --dead-letter-topic");
  } else if (f.clear_dead_letter) {
    mask.push_back("deadLetterPolicy");
  }
  if (!f.min_retry_delay.empty() || !f.max_retry_delay.empty()) {
    Json rp = Json::object();
    if (!f.min_retry_delay.empty()) {
      FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.min_retry_delay));
      rp["minimumBackoff"] = FormatProtoDuration(ms);
    }
    if (!f.max_retry_delay.empty()) {
      FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.max_retry_delay));
      rp["maximumBackoff"] = FormatProtoDuration(ms);
    }
    body["retryPolicy"] = rp;
    mask.push_back("retryPolicy");
  } else if (f.clear_retry) {
    mask.push_back("retryPolicy");
  }
  return std::make_pair(body, mask);
}

void PrintSubscriptions(Cli& cli, Json const& list) {
  if (cli.json_output()) {
    std::cout << list.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (auto const& s : list) {
    std::string dlt, attempts, retry;
    if (s.contains("deadLetterPolicy")) {
      dlt = Short(s["deadLetterPolicy"].value("deadLetterTopic", ""));
      attempts = std::to_string(s["deadLetterPolicy"].value("maxDeliveryAttempts", 0));
    }
    if (s.contains("retryPolicy")) {
      retry = s["retryPolicy"].value("minimumBackoff", "") + ".." + s["retryPolicy"].value("maximumBackoff", "");
    }
    rows.push_back({s.value("name", ""), Short(s.value("topic", "")), std::to_string(s.value("ackDeadlineSeconds", 0)),
                    dlt, attempts, retry});
  }
  PrintTable({"NAME", "TOPIC", "ACK_DEADLINE", "DEAD_LETTER_TOPIC", "MAX_ATTEMPTS", "RETRY_DELAY"}, rows);
}

struct PubsubState {
  std::vector<std::string> topic_ids, sub_ids, attributes;
  std::string one_id, message, ordering_key;
  SubscriptionFlags sf;
  int limit = 1;
  bool auto_ack = false;
};

}  // namespace

void AddPubsubCommands(CLI::App& app, Cli& cli, Runner const& run) {
  auto st = std::make_shared<PubsubState>();
  // ---- topics ----
  auto* topics = app.add_subcommand("topics", "Manage topics");
  topics->require_subcommand(1);
  auto* tcreate = topics->add_subcommand("create", "Create topics");
  tcreate->add_option("TOPIC", st->topic_ids, "Topic ids or full names")->required();
  tcreate->callback(run([&cli, st]() -> Status {
    for (auto const& id : st->topic_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "topics"));
      FERRY_RETURN_IF_ERROR(cli.Call("PUT", "/v1/" + name, nullptr));
      std::cerr << "Created topic [" << name << "].\n";
    }
    return OkStatus();
  }));
  auto* tlist = topics->add_subcommand("list", "List topics");
  tlist->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    Json all = Json::array();
    std::string token;
    do {
      std::string target = "/v1/projects/" + project + "/topics?pageSize=1000";
      if (!token.empty()) target += "&pageToken=" + UrlEncode(token);
      FERRY_ASSIGN_OR_RETURN(auto page, cli.Call("GET", target));
      for (auto const& t : page.value("topics", Json::array())) all.push_back(t);
      token = page.value("nextPageToken", "");
    } while (!token.empty());
    if (cli.json_output()) {
      std::cout << all.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& t : all) rows.push_back({t.value("name", ""), t.value("messageRetentionDuration", "")});
    PrintTable({"NAME", "RETENTION"}, rows);
    return OkStatus();
  }));
  auto* tdescribe = topics->add_subcommand("describe", "Show a topic");
  tdescribe->add_option("TOPIC", st->one_id)->required();
  tdescribe->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "topics"));
    FERRY_ASSIGN_OR_RETURN(auto topic, cli.Call("GET", "/v1/" + name));
    PrintDescribe(cli, topic);
    return OkStatus();
  }));
  auto* tdelete = topics->add_subcommand("delete", "Delete topics");
  tdelete->add_option("TOPIC", st->topic_ids)->required();
  tdelete->callback(run([&cli, st]() -> Status {
    for (auto const& id : st->topic_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "topics"));
      FERRY_RETURN_IF_ERROR(cli.Call("DELETE", "/v1/" + name));
      std::cerr << "Deleted topic [" << name << "].\n";
    }
    return OkStatus();
  }));

  // ---- subscriptions ----
  auto* subs = app.add_subcommand("subscriptions", "Manage subscriptions");
  subs->require_subcommand(1);
  auto* screate = subs->add_subcommand("create", "Create a subscription");
  screate->add_option("SUBSCRIPTION", st->one_id)->required();
  AddSubscriptionFlags(screate, st->sf, false);
  screate->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto body_mask, SubscriptionBody(cli, st->sf));
    FERRY_RETURN_IF_ERROR(cli.Call("PUT", "/v1/" + name, &body_mask.first));
    std::cerr << "Created subscription [" << name << "].\n";
    return OkStatus();
  }));
  auto* supdate = subs->add_subcommand("update", "Change a subscription");
  supdate->add_option("SUBSCRIPTION", st->one_id)->required();
  AddSubscriptionFlags(supdate, st->sf, true);
  supdate->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto body_mask, SubscriptionBody(cli, st->sf));
    auto& [sub, mask] = body_mask;
    if (mask.empty()) return InvalidArgumentError("nothing to update: pass at least one flag");
    std::string joined;
    for (auto const& m : mask) joined += (joined.empty() ? "" : ",") + m;
    Json body{{"subscription", sub}, {"updateMask", joined}};
    FERRY_RETURN_IF_ERROR(cli.Call("PATCH", "/v1/" + name, &body));
    std::cerr << "Updated subscription [" << name << "].\n";
    return OkStatus();
  }));
  auto* slist = subs->add_subcommand("list", "List subscriptions");
  slist->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    Json all = Json::array();
    std::string token;
    do {
      std::string target = "/v1/projects/" + project + "/subscriptions?pageSize=1000";
      if (!token.empty()) target += "&pageToken=" + UrlEncode(token);
      FERRY_ASSIGN_OR_RETURN(auto page, cli.Call("GET", target));
      for (auto const& s : page.value("subscriptions", Json::array())) all.push_back(s);
      token = page.value("nextPageToken", "");
    } while (!token.empty());
    PrintSubscriptions(cli, all);
    return OkStatus();
  }));
  auto* sdescribe = subs->add_subcommand("describe", "Show a subscription");
  sdescribe->add_option("SUBSCRIPTION", st->one_id)->required();
  sdescribe->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto sub, cli.Call("GET", "/v1/" + name));
    PrintDescribe(cli, sub);
    return OkStatus();
  }));
  auto* sdelete = subs->add_subcommand("delete", "Delete subscriptions");
  sdelete->add_option("SUBSCRIPTION", st->sub_ids)->required();
  sdelete->callback(run([&cli, st]() -> Status {
    for (auto const& id : st->sub_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "subscriptions"));
      FERRY_RETURN_IF_ERROR(cli.Call("DELETE", "/v1/" + name));
      std::cerr << "Deleted subscription [" << name << "].\n";
    }
    return OkStatus();
  }));

  // ---- publish ----
  auto* publish = app.add_subcommand("publish", "Publish a message to a topic");
  publish->add_option("TOPIC", st->one_id)->required();
  publish->add_option("--message", st->message, "Message data (text)");
  publish->add_option("--attribute", st->attributes, "An attribute KEY=VALUE (repeatable, or comma-separated)")
      ->delimiter(',');
  publish->add_option("--ordering-key", st->ordering_key, "Ordering key");
  publish->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "topics"));
    Json msg = Json::object();
    if (!st->message.empty()) msg["data"] = Base64Encode(st->message);
    Json attrs = Json::object();
    for (auto const& kv : st->attributes) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return InvalidArgumentError("--attribute must be KEY=VALUE: " + kv);
      attrs[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (!attrs.empty()) msg["attributes"] = attrs;
    if (!st->ordering_key.empty()) msg["orderingKey"] = st->ordering_key;
    if (st->message.empty() && attrs.empty()) return InvalidArgumentError("pass --message or --attribute");
    Json body{{"messages", Json::array({msg})}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/v1/" + name + ":publish", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (auto const& id : res.value("messageIds", Json::array())) rows.push_back({id.get<std::string>()});
      PrintTable({"MESSAGE_ID"}, rows);
    }
    return OkStatus();
  }));

  // ---- pull ----
  auto* pull = app.add_subcommand("pull", "Pull messages from a subscription");
  pull->add_option("SUBSCRIPTION", st->one_id)->required();
  pull->add_option("--limit", st->limit, "Most messages to pull")->capture_default_str()->check(CLI::Range(1, 1000));
  pull->add_flag("--auto-ack", st->auto_ack, "Acknowledge what was pulled");
  pull->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(st->one_id, "subscriptions"));
    Json body{{"maxMessages", st->limit}, {"returnImmediately", false}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/v1/" + name + ":pull", &body));
    Json received = res.value("receivedMessages", Json::array());
    if (st->auto_ack && !received.empty()) {
      Json ids = Json::array();
      for (auto const& r : received) ids.push_back(r["ackId"]);
      Json ack{{"ackIds", ids}};
      FERRY_RETURN_IF_ERROR(cli.Call("POST", "/v1/" + name + ":acknowledge", &ack));
    }
    if (cli.json_output()) {
      std::cout << received.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& r : received) {
      auto const& m = r["message"];
      auto data = Base64Decode(m.value("data", ""));
      std::string attrs;
      Json const attributes = m.value("attributes", Json::object());
      for (auto const& [k, v] : attributes.items()) {
        attrs += (attrs.empty() ? "" : ",") + k + "=" + v.get<std::string>();
      }
      std::string attempt = r.contains("deliveryAttempt") ? std::to_string(r["deliveryAttempt"].get<int>()) : "";
      rows.push_back({data.value_or("<invalid base64>"), m.value("messageId", ""), m.value("orderingKey", ""), attrs,
                      attempt, st->auto_ack ? "SUCCESS" : r.value("ackId", "")});
    }
    if (rows.empty()) {
      std::cerr << "Listed 0 items.\n";
      return OkStatus();
    }
    PrintTable({"DATA", "MESSAGE_ID", "ORDERING_KEY", "ATTRIBUTES", "DELIVERY_ATTEMPT", st->auto_ack ? "ACK_STATUS" : "ACK_ID"},
               rows);
    return OkStatus();
  }));
}

}  // namespace ferry
