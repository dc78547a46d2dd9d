#include "api/admin/admin_api.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "store/ack_id.h"
#include "store/delivery_policy.h"
#include "common/time_util.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

using nlohmann::json;

HttpResponse JsonReply(json const& body, int status = 200) { return {status, "application/json", SafeDump(body), {}}; }

// Environment values are secrets as often as not (database passwords, API keys): the API shows the names only.
json RedactedSpecJson(FunctionSpec const& spec) {
  json j = FunctionSpecToJson(spec);
  for (char const* key : {"env_vars", "build_environment_variables"}) {
    if (!j.contains(key) || !j[key].is_object()) continue;
    for (auto& [name, value] : j[key].items()) value = "(hidden)";
  }
  return j;
}

HttpResponse NotFoundPath(HttpRequest const& req) {
  return ErrorResponse(NotFoundError("Not found: " + req.method + " " + req.path));
}


json StateJson(FunctionState const& s) {
  json j{{"name", FunctionResourceName(s.spec)},
         {"spec", RedactedSpecJson(s.spec)},
         {"state", s.state},
         {"instancesRunning", s.instances_running},
         {"instancesBusy", s.instances_busy}};
  if (!s.error.empty()) j["error"] = s.error;
  for (auto const& part : s.nodes) {
    j["nodes"].push_back({{"node", part.node}, {"instancesRunning", part.running}, {"instancesBusy", part.busy}});
  }
  if (s.spec.trigger_type == kPubsubTrigger) j["triggerSubscription"] = TriggerSubscriptionName(s.spec);
  return j;
}

json ExecutionJson(ExecutionRow const& e) {
  json j{{"executionId", e.execution_id}, {"function", e.function},        {"trigger", e.trigger},
         {"attempt", e.attempt},          {"status", e.status},            {"startTime", FormatRfc3339(e.start_ms)},
         {"durationMs", e.duration_ms}};
  if (!e.message_id.empty()) j["messageId"] = e.message_id;
  if (!e.error.empty()) j["error"] = e.error;
  return j;
}

int IntParam(HttpRequest const& req, std::string_view name, int fallback, int max) {
  std::string v = req.Query(name);
  if (v.empty()) return fallback;
  try {
    return std::clamp(std::stoi(v), 1, max);
  } catch (...) {
    return fallback;
  }
}

// The "after" query parameter: a message id to list after (0: from the first).
StatusOr<int64_t> AfterParam(HttpRequest const& req) {
  std::string a = req.Query("after");
  if (a.empty()) return int64_t{0};
  auto id = DecodeMessageId(a);
  if (!id) return InvalidArgumentError("\"after\" must be a message id");
  return *id;
}

// A message with a preview of its data (text up to 200 bytes, when it is text); `data` is the whole of it, base64
// as in Pub/Sub.
json MessagePreviewJson(PubsubMessage const& m) {
  std::string preview;
  if (IsValidUtf8(m.data)) {
    preview = m.data.size() <= 200 ? m.data : ToValidUtf8(m.data.substr(0, 200)) + "...";
  } else {
    preview = "(" + std::to_string(m.data.size()) + " bytes, not text)";
  }
  json j{{"messageId", m.message_id},
         {"publishTime", FormatRfc3339(m.publish_time_ms)},
         {"data", Base64Encode(m.data)},
         {"dataPreview", preview},
         {"attributes", m.attributes}};
  if (!m.ordering_key.empty()) j["orderingKey"] = m.ordering_key;
  return j;
}

// A dead-lettered message: that, with its error and attempts.
json DeadLetterJson(DeadLetterEntry const& e) {
  auto const& m = e.held.message;
  json j = MessagePreviewJson(m);
  j["deliveryAttempts"] = e.delivery_attempts;
  j["redrives"] = e.redrives;
  if (!e.last_error.empty()) j["lastError"] = e.last_error;
  if (auto it = m.attributes.find(kSourceMessageIdAttribute); it != m.attributes.end()) {
    j["sourceMessageId"] = it->second;  // its executions' messageId
  }
  if (auto it = m.attributes.find("CloudPubSubDeadLetterSourceTopicPublishTime"); it != m.attributes.end()) {
    j["firstPublishTime"] = it->second;
  }
  return j;
}

json ScheduleJson(ScheduleState const& s) {
  json j = ScheduleSpecToJson(s.spec);
  j["name"] = ScheduleResourceName(s.spec);
  j["id"] = s.spec.name;
  j["state"] = s.paused ? "PAUSED" : "ENABLED";
  j["next_fire_time"] = s.next_fire_ms >= 0 && !s.paused ? FormatRfc3339(s.next_fire_ms) : "";
  j["last_fired_time"] = s.last_fired_ms > 0 ? FormatRfc3339(s.last_fired_ms) : "";
  return j;
}

}  // namespace

HttpResponse AdminApi::Handle(HttpRequest const& req) {
  std::string_view path = req.path;
  constexpr std::string_view kPrefix = "/ferry/v1/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return NotFoundPath(req);
  path.remove_prefix(kPrefix.size());
  if (path == "deploy") return req.method == "POST" ? Deploy(req) : MethodNotAllowed(req, "POST");
  if (path.rfind("executions/", 0) == 0) {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    auto row = log_.Execution(std::string(path.substr(11)));
    if (!row.ok()) return ErrorResponse(row.status());
    if (!row->has_value()) return ErrorResponse(NotFoundError("Execution not found"));
    return JsonReply(ExecutionJson(**row));
  }
  // projects/{p}/functions[/{f}...] or projects/{p}/locations/{r}/functions/{f}...
  if (path.rfind("projects/", 0) != 0) return NotFoundPath(req);
  path.remove_prefix(9);
  auto slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0) return NotFoundPath(req);
  std::string project(path.substr(0, slash));
  if (!IsValidProjectId(project)) return ErrorResponse(InvalidArgumentError("Invalid project id"));
  path.remove_prefix(slash + 1);
  std::string region = kDefaultRegion;
  bool region_given = false;
  if (path.rfind("locations/", 0) == 0) {
    region_given = true;
    path.remove_prefix(10);
    slash = path.find('/');
    if (slash == std::string_view::npos || slash == 0) return NotFoundPath(req);
    region = std::string(path.substr(0, slash));
    if (!IsValidRegionId(region)) return ErrorResponse(InvalidArgumentError("Invalid location id"));
    path.remove_prefix(slash + 1);
  }
  if (path == "functions") {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    auto list = functions_.List(project);
    if (!list.ok()) return ErrorResponse(list.status());
    json out = json::array();
    for (auto const& s : *list) out.push_back(StateJson(s));
    return JsonReply(json{{"functions", out}});
  }
  if (path == "overview") {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    return Overview(project);
  }
  if (path == "jobs" || path == "schedules") {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    auto list = scheduler_.List(project);
    if (!list.ok()) return ErrorResponse(list.status());
    json out = json::array();
    for (auto const& s : *list) out.push_back(ScheduleJson(s));
    return JsonReply(json{{"schedules", out}});
  }
  for (std::string_view collection : {"jobs/", "schedules/"}) {
    if (path.rfind(collection, 0) != 0) continue;
    path.remove_prefix(collection.size());
    auto colon = path.find(':');
    std::string id(path.substr(0, colon));
    std::string verb = colon == std::string_view::npos ? "" : std::string(path.substr(colon + 1));
    if (id.empty() || id.find('/') != std::string::npos) return NotFoundPath(req);
    if (!IsValidResourceId(id)) return ErrorResponse(InvalidArgumentError("Invalid job id"));
    return Schedule(req, "projects/" + project + "/locations/" + region + "/jobs/" + id, verb);
  }
  if (path.rfind("subscriptions/", 0) == 0) {
    path.remove_prefix(14);
    auto end = path.find('/');
    std::string id(path.substr(0, end));
    if (end == std::string_view::npos || id.empty()) return NotFoundPath(req);
    if (!IsValidResourceId(id)) return ErrorResponse(InvalidArgumentError("Invalid subscription id"));
    std::string_view rest = path.substr(end + 1);
    if (rest == "messages") return Peek(req, MakeResourceName(project, ResourceKind::kSubscription, id));
    if (rest.rfind("deadLetters", 0) != 0) return NotFoundPath(req);
    rest.remove_prefix(11);
    if (!rest.empty() && rest.front() != ':') return NotFoundPath(req);
    return DeadLetterCall(req, MakeResourceName(project, ResourceKind::kSubscription, id),
                          std::string(rest.empty() ? rest : rest.substr(1)));
  }
  if (path.rfind("functions/", 0) != 0) return NotFoundPath(req);
  path.remove_prefix(10);
  // {f}, {f}:call, {f}/executions, {f}/logs
  auto end = path.find_first_of(":/");
  std::string id(path.substr(0, end));
  std::string rest = end == std::string_view::npos ? "" : std::string(path.substr(end));
  if (id.empty()) return NotFoundPath(req);
  if (!IsValidFunctionName(id)) return ErrorResponse(InvalidArgumentError("Invalid function id"));
  if (!region_given) {
    // A function's id is unique in its project on Ferry, so a path without a location finds it in any region
    // (the CLI's `ferry logs bar` for a function deployed to us-central1).
    if (auto list = functions_.List(project); list.ok()) {
      for (auto const& state : *list) {
        if (state.spec.name == id) region = state.spec.region;
      }
    }
  }
  return Function(req, "projects/" + project + "/locations/" + region + "/functions/" + id, rest);
}

HttpResponse AdminApi::Schedule(HttpRequest const& req, std::string const& name, std::string const& verb) {
  if (verb.empty()) {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    auto state = scheduler_.Get(name);
    if (!state.ok()) return ErrorResponse(state.status());
    return JsonReply(ScheduleJson(*state));
  }
  if (req.method != "POST") return MethodNotAllowed(req, "POST");
  Status st = verb == "run"      ? scheduler_.RunNow(name)
              : verb == "pause"  ? scheduler_.Pause(name)
              : verb == "resume" ? scheduler_.Resume(name)
                                 : NotFoundError("Unknown schedule verb \"" + verb + "\" (run, pause, resume)");
  if (!st.ok()) return ErrorResponse(st);
  auto state = scheduler_.Get(name);
  if (!state.ok()) return ErrorResponse(state.status());
  return JsonReply(ScheduleJson(*state));
}

HttpResponse AdminApi::DeadLetterCall(HttpRequest const& req, std::string const& subscription,
                                      std::string const& verb) {
  if (verb.empty()) {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    auto after = AfterParam(req);
    if (!after.ok()) return ErrorResponse(after.status());
    auto page = dead_letters_.List(subscription, *after, IntParam(req, "limit", 100, kMaxPullMessages));
    if (!page.ok()) return ErrorResponse(page.status());
    json messages = json::array();
    for (auto const& e : page->messages) messages.push_back(DeadLetterJson(e));
    json out{{"subscription", subscription},
             {"deadLetterSubscription", page->dead_letter_subscription},
             {"messages", messages}};
    if (page->next_after != 0) out["nextAfter"] = std::to_string(page->next_after);
    return JsonReply(out);
  }
  if (verb != "redrive" && verb != "purge") {
    return ErrorResponse(NotFoundError("Unknown dead-letter verb \"" + verb + "\" (redrive, purge)"));
  }
  if (req.method != "POST") return MethodNotAllowed(req, "POST");
  auto parsed = ParseJsonText(req.body.empty() ? "{}" : req.body);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  json const& body = *parsed;
  if (!body.is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
  std::vector<std::string> ids;
  if (body.contains("messageIds")) {
    if (!body["messageIds"].is_array()) return ErrorResponse(InvalidArgumentError("\"messageIds\" must be a list"));
    for (auto const& id : body["messageIds"]) {
      if (!id.is_string()) return ErrorResponse(InvalidArgumentError("\"messageIds\" must hold strings"));
      ids.push_back(id.get<std::string>());
    }
  }
  bool all = false;
  if (body.contains("all")) {
    if (!body["all"].is_boolean()) return ErrorResponse(InvalidArgumentError("\"all\" must be true or false"));
    all = body["all"].get<bool>();
  }
  auto moved = verb == "redrive" ? dead_letters_.Redrive(subscription, ids, all)
                                 : dead_letters_.Purge(subscription, ids, all);
  if (!moved.ok()) return ErrorResponse(moved.status());
  return JsonReply(json{{verb == "redrive" ? "redriven" : "purged", *moved}});
}

HttpResponse AdminApi::Peek(HttpRequest const& req, std::string const& subscription) {
  if (req.method != "GET") return MethodNotAllowed(req, "GET");
  auto after = AfterParam(req);
  if (!after.ok()) return ErrorResponse(after.status());
  int limit = IntParam(req, "limit", 50, kMaxPullMessages);
  if (auto sub = broker_.GetSubscription(subscription); !sub.ok()) return ErrorResponse(sub.status());
  auto held = broker_.Peek(subscription, *after, limit + 1);  // one more: whether a next page exists
  if (!held.ok()) return ErrorResponse(held.status());
  json messages = json::array();
  for (std::size_t i = 0; i < held->size() && static_cast<int>(i) < limit; ++i) {
    json j = MessagePreviewJson((*held)[i].message);
    j["deliveryAttempts"] = (*held)[i].attempts;
    j["leased"] = (*held)[i].leased;
    messages.push_back(std::move(j));
  }
  json out{{"subscription", subscription}, {"messages", messages}};
  if (static_cast<int>(held->size()) > limit) out["nextAfter"] = (*held)[limit - 1].message.message_id;
  return JsonReply(out);
}

HttpResponse AdminApi::Overview(std::string const& project) {
  std::string const prefix = "projects/" + project + "/";
  auto stats = broker_.Stats();
  if (!stats.ok()) return ErrorResponse(stats.status());
  BrokerCounters counters = broker_.Counters();
  int64_t now = broker_.NowMillis();
  json topics = json::array();
  for (std::string token;;) {
    auto page = broker_.ListTopics(project, 1000, token);
    if (!page.ok()) return ErrorResponse(page.status());
    for (auto const& t : page->items) {
      auto c = counters.topics.find(t.name);
      topics.push_back({{"name", t.name},
                        {"publishedMessages", c == counters.topics.end() ? 0 : c->second.published_messages}});
    }
    if (page->next_page_token.empty()) break;
    token = page->next_page_token;
  }
  std::map<std::string, SubscriptionStats const*> by_name;
  for (auto const& s : *stats) by_name[s.name] = &s;
  json subscriptions = json::array();
  for (std::string token;;) {
    auto page = broker_.ListSubscriptions(project, 1000, token);
    if (!page.ok()) return ErrorResponse(page.status());
    for (auto const& s : page->items) {
      json j{{"name", s.name}, {"topic", s.topic}, {"backlog", 0}, {"oldestUnackedAgeSeconds", 0}};
      if (auto it = by_name.find(s.name); it != by_name.end() && it->second->backlog > 0) {
        j["backlog"] = it->second->backlog;
        j["oldestUnackedAgeSeconds"] =
            std::max<double>(0, static_cast<double>(now - it->second->oldest_unacked_publish_ms) / 1000.0);
      }
      auto c = counters.subscriptions.find(s.name);
      SubscriptionCounters sc = c == counters.subscriptions.end() ? SubscriptionCounters{} : c->second;
      j["delivered"] = sc.delivered;
      j["acked"] = sc.acked;
      j["deadLettered"] = sc.dead_lettered;
      if (s.dead_letter_policy && !s.dead_letter_policy->dead_letter_topic.empty()) {
        j["deadLetterTopic"] = s.dead_letter_policy->dead_letter_topic;
      }
      subscriptions.push_back(std::move(j));
    }
    if (page->next_page_token.empty()) break;
    token = page->next_page_token;
  }
  auto list = functions_.List(project);
  if (!list.ok()) return ErrorResponse(list.status());
  json functions = json::array();
  for (auto const& f : *list) {
    json j = StateJson(f);
    j["executions"] = functions_.ExecutionCounts(FunctionResourceName(f.spec));
    functions.push_back(std::move(j));
  }
  return JsonReply(json{{"project", project},
                        {"time", FormatRfc3339(now)},
                        {"topics", topics},
                        {"subscriptions", subscriptions},
                        {"functions", functions}});
}

HttpResponse AdminApi::Function(HttpRequest const& req, std::string const& name, std::string const& rest) {
  if (rest.empty()) {
    if (req.method == "GET") {
      auto state = functions_.Get(name);
      return state.ok() ? JsonReply(StateJson(*state)) : ErrorResponse(state.status());
    }
    if (req.method == "DELETE") {
      auto st = functions_.Delete(name);
      return st.ok() ? JsonReply(json::object()) : ErrorResponse(st);
    }
    return MethodNotAllowed(req, "GET, DELETE");
  }
  if (rest == ":call") {
    if (req.method != "POST") return MethodNotAllowed(req, "POST");
    auto parsed = ParseJsonText(req.body.empty() ? "{}" : req.body);
    if (!parsed.ok()) return ErrorResponse(parsed.status());
    json& body = *parsed;
    if (!body.is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
    std::string data;
    if (body.contains("data")) {
      if (!body["data"].is_string()) return ErrorResponse(InvalidArgumentError("\"data\" must be a string"));
      data = body["data"].get<std::string>();
    }
    auto result = functions_.Call(name, data);
    if (!result.ok()) return ErrorResponse(result.status());
    json out{{"executionId", result->execution_id}, {"status", result->status}};
    if (result->http_status != 0) out["httpStatus"] = result->http_status;
    if (!result->body.empty()) out["result"] = result->body;
    if (!result->error.empty()) out["error"] = result->error;
    return JsonReply(out);
  }
  if (req.method != "GET") return MethodNotAllowed(req, "GET");
  // Executions and logs stay readable after a function is deleted, until retention drops them.
  if (rest == "/executions") {
    auto rows = log_.Executions(name, IntParam(req, "limit", 20, 1000), req.Query("messageId"));
    if (!rows.ok()) return ErrorResponse(rows.status());
    json out = json::array();
    for (auto const& r : *rows) out.push_back(ExecutionJson(r));
    return JsonReply(json{{"executions", out}});
  }
  if (rest == "/logs") {
    LogQuery q;
    q.function = name;
    q.execution_id = req.Query("executionId");
    q.limit = IntParam(req, "limit", 100, 10000);
    std::string after = req.Query("after");
    if (!after.empty()) {
      try {
        q.after_seq = std::stoll(after);
      } catch (...) {
        return ErrorResponse(InvalidArgumentError("\"after\" must be a number"));
      }
    }
    auto lines = log_.Logs(q);
    if (!lines.ok()) return ErrorResponse(lines.status());
    json out = json::array();
    for (auto const& l : *lines) {
      out.push_back({{"seq", l.seq},
                     {"time", FormatRfc3339(l.time_ms)},
                     {"executionId", l.execution_id},
                     {"stream", l.stream},
                     {"severity", l.severity},
                     {"message", l.message}});
    }
    return JsonReply(json{{"entries", out}});
  }
  return NotFoundPath(req);
}

HttpResponse AdminApi::Deploy(HttpRequest const& req) {
  auto parsed = ParseJsonText(req.body);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  auto request = DeployRequestFromJson(*parsed, default_project_);
  if (!request.ok()) return ErrorResponse(request.status());
  auto result = functions_.Deploy(*std::move(request));
  if (!result.ok()) return ErrorResponse(result.status());
  json plan = json::array();
  for (auto const& item : result->plan) plan.push_back({{"action", item.action}, {"kind", item.kind}, {"name", item.name}});
  json reply{{"plan", plan}, {"applied", result->applied}};
  if (!result->notes.empty()) reply["notes"] = result->notes;
  return JsonReply(reply);
}

}  // namespace ferry
