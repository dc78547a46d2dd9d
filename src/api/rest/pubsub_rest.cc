#include "api/rest/pubsub_rest.h"

#include <nlohmann/json.hpp>

#include "api/metrics.h"
#include "common/split.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

HttpResponse JsonResponse(Json const& body) { return HttpResponse{200, "application/json", SafeDump(body), {}}; }
HttpResponse Empty() { return JsonResponse(Json::object()); }

template <typename T>
HttpResponse Reply(StatusOr<T> const& result, Json (*to_json)(T const&)) {
  if (!result.ok()) return ErrorResponse(result.status());
  return JsonResponse(to_json(*result));
}

HttpResponse Reply(Status const& status) { return status.ok() ? Empty() : ErrorResponse(status); }

StatusOr<Json> ParseBody(HttpRequest const& req) {
  if (req.body.empty()) return Json::object();
  FERRY_ASSIGN_OR_RETURN(Json json, ParseOrderedJsonText(req.body));
  if (!json.is_object()) return InvalidArgumentError("Invalid JSON payload received. The body is not an object.");
  return json;
}

// Reads the named members of a request body, refusing any other, as Google's JSON parser does.
Status CheckFields(Json const& body, std::initializer_list<std::string_view> known) {
  for (auto const& [key, value] : body.items()) {
    std::string camel = ToLowerCamel(key);
    if (std::find(known.begin(), known.end(), camel) == known.end()) {
      return InvalidArgumentError("Invalid JSON payload received. Unknown name \"" + key + "\": Cannot find field.");
    }
  }
  return OkStatus();
}

Json const* Field(Json const& body, std::string_view camel) {
  for (auto const& [key, value] : body.items()) {
    if (ToLowerCamel(key) == camel) return &value;
  }
  return nullptr;
}

StatusOr<std::vector<std::string>> StringList(Json const& body, std::string_view camel) {
  std::vector<std::string> out;
  Json const* v = Field(body, camel);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return InvalidArgumentError("Invalid value at '" + std::string(camel) + "': not a list");
  for (auto const& item : *v) {
    if (!item.is_string()) {
      return InvalidArgumentError("Invalid value at '" + std::string(camel) + "': got a " + item.type_name());
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

StatusOr<int> IntField(Json const& body, std::string_view camel) {
  Json const* v = Field(body, camel);
  if (v == nullptr || v->is_null()) return 0;
  if (v->is_number_integer()) {
    auto n = v->get<int64_t>();
    if (n >= INT32_MIN && n <= INT32_MAX) return static_cast<int>(n);
  }
  if (v->is_string()) {
    try {
      std::size_t used = 0;
      auto const& s = v->get_ref<std::string const&>();
      long long n = std::stoll(s, &used);
      if (used == s.size() && n >= INT32_MIN && n <= INT32_MAX) return static_cast<int>(n);
    } catch (std::exception const&) {
    }
  }
  return InvalidArgumentError("Invalid value at '" + std::string(camel) + "' (TYPE_INT32), got a " + v->type_name());
}

StatusOr<bool> BoolField(Json const& body, std::string_view camel) {
  Json const* v = Field(body, camel);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_boolean()) return InvalidArgumentError("Invalid value at '" + std::string(camel) + "' (TYPE_BOOL)");
  return v->get<bool>();
}

// "a,b" -> {"a", "b"}, as a FieldMask travels in JSON.
std::vector<std::string> ParseMask(std::string_view mask) {
  std::vector<std::string> out;
  for (auto part : Split(mask, ',')) {
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

StatusOr<int> PageSize(HttpRequest const& req) {
  std::string s = req.Query("pageSize");
  if (s.empty()) return 0;
  try {
    std::size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size() && n >= 0) return n;
  } catch (std::exception const&) {
  }
  return InvalidArgumentError("Invalid value for pageSize: \"" + s + "\"");
}

// The name in a body must agree with the path; an absent one takes the path's.
Status ReconcileName(std::string& body_name, std::string const& path_name) {
  if (body_name.empty()) {
    body_name = path_name;
    return OkStatus();
  }
  if (body_name != path_name) {
    return InvalidArgumentError("The resource name in the body (" + body_name + ") does not match the URL (" +
                                path_name + ")");
  }
  return OkStatus();
}

HttpResponse NotFound(HttpRequest const& req) {
  return ErrorResponse(NotFoundError("no such resource or method: " + req.method + " " + req.path));
}

Json TopicJson(Topic const& t) { return TopicToJson(t); }
// As Google answers, and as the gRPC API does: `state` is output only (RESOURCE_ERROR is for BigQuery and Cloud
// Storage subscriptions, which Ferry does not have). Not in SubscriptionToJson, which is also the stored form.
Json SubscriptionJson(Subscription const& s) {
  Json j = SubscriptionToJson(s);
  j["state"] = "ACTIVE";
  return j;
}

Json SnapshotJson(Snapshot const& s) {
  Json j = Json::object();
  j["name"] = s.name;
  j["topic"] = s.topic;
  j["expireTime"] = FormatRfc3339(s.expire_time_ms);
  if (!s.labels.empty()) {
    Json labels = Json::object();
    for (auto const& [k, v] : s.labels) labels[k] = v;
    j["labels"] = std::move(labels);
  }
  return j;
}

StatusOr<Attributes> LabelsField(Json const& body) {
  Attributes out;
  Json const* v = Field(body, "labels");
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_object()) return InvalidArgumentError("Invalid value at 'labels': not an object");
  for (auto const& [k, value] : v->items()) {
    if (!value.is_string()) return InvalidArgumentError("Invalid value at 'labels[" + k + "]'");
    out.emplace(k, value.get<std::string>());
  }
  return out;
}

StatusOr<std::string> StringField(Json const& body, std::string_view camel) {
  Json const* v = Field(body, camel);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return InvalidArgumentError("Invalid value at '" + std::string(camel) + "': got a " + v->type_name());
  return v->get<std::string>();
}

class Request {
 public:
  Request(Broker& broker, HttpRequest const& req) : broker_(broker), req_(req) {}

  HttpResponse Route() {
    std::string_view path = req_.path;
    if (path == "/metrics") return req_.method == "GET" ? Metrics() : MethodNotAllowed(req_, "GET");
    if (path == "/healthz" || path == "/") return HttpResponse{200, "text/plain", "Ok\n", {}};
    constexpr std::string_view kPrefix = "/v1/";
    if (path.substr(0, kPrefix.size()) != kPrefix) return NotFound(req_);
    auto parts = Split(path.substr(kPrefix.size()), '/');
    if (parts.size() < 3 || parts[0] != "projects" || parts[1].empty()) return NotFound(req_);
    project_ = std::string(parts[1]);
    std::string_view collection = parts[2];
    if (parts.size() == 3) {
      if (req_.method != "GET") return MethodNotAllowed(req_, "GET");
      if (collection == "topics") return ListTopics();
      if (collection == "subscriptions") return ListSubscriptions();
      if (collection == "snapshots") return ListSnapshots();
      return NotFound(req_);
    }
    // The last segment may carry a custom verb: "bar:publish". Resource ids cannot contain ':'.
    std::string_view id = parts[3];
    std::string_view verb;
    if (auto colon = id.find(':'); colon != std::string_view::npos && parts.size() == 4) {
      verb = id.substr(colon + 1);
      id = id.substr(0, colon);
    }
    std::string base = "projects/" + project_ + "/" + std::string(collection) + "/";
    name_ = base + std::string(id);
    if (collection == "topics") {
      if (parts.size() == 5 && parts[4] == "subscriptions") {
        return req_.method == "GET" ? ListTopicSubscriptions() : MethodNotAllowed(req_, "GET");
      }
      if (parts.size() == 5 && parts[4] == "snapshots") {
        return req_.method == "GET" ? ListTopicSnapshots() : MethodNotAllowed(req_, "GET");
      }
      if (parts.size() != 4) return NotFound(req_);
      if (verb == "publish") return req_.method == "POST" ? Publish() : MethodNotAllowed(req_, "POST");
      if (!verb.empty()) return NotFound(req_);
      if (req_.method == "PUT") return CreateTopic();
      if (req_.method == "GET") return Reply(broker_.GetTopic(name_), &TopicJson);
      if (req_.method == "PATCH") return UpdateTopic();
      if (req_.method == "DELETE") return Reply(broker_.DeleteTopic(name_));
      return MethodNotAllowed(req_, "GET, PUT, PATCH, DELETE");
    }
    if (collection == "subscriptions") {
      if (parts.size() != 4) return NotFound(req_);
      if (!verb.empty()) {
        if (req_.method != "POST") return MethodNotAllowed(req_, "POST");
        if (verb == "pull") return Pull();
        if (verb == "acknowledge") return Acknowledge();
        if (verb == "modifyAckDeadline") return ModifyAckDeadline();
        if (verb == "modifyPushConfig") return ModifyPushConfig();
        if (verb == "seek") return Seek();
        return NotFound(req_);
      }
      if (req_.method == "PUT") return CreateSubscription();
      if (req_.method == "GET") return Reply(broker_.GetSubscription(name_), &SubscriptionJson);
      if (req_.method == "PATCH") return UpdateSubscription();
      if (req_.method == "DELETE") return Reply(broker_.DeleteSubscription(name_));
      return MethodNotAllowed(req_, "GET, PUT, PATCH, DELETE");
    }
    if (collection == "snapshots") {
      if (parts.size() != 4 || !verb.empty()) return NotFound(req_);
      if (req_.method == "PUT") return CreateSnapshot();
      if (req_.method == "GET") return Reply(broker_.GetSnapshot(name_), &SnapshotJson);
      if (req_.method == "PATCH") return UpdateSnapshot();
      if (req_.method == "DELETE") return Reply(broker_.DeleteSnapshot(name_));
      return MethodNotAllowed(req_, "GET, PUT, PATCH, DELETE");
    }
    return NotFound(req_);
  }

 private:
  HttpResponse CreateTopic() {
    auto body = ParseBody(req_);
    if (!body.ok()) return ErrorResponse(body.status());
    auto topic = TopicFromJson(*body);
    if (!topic.ok()) return ErrorResponse(topic.status());
    if (auto st = ReconcileName(topic->name, name_); !st.ok()) return ErrorResponse(st);
    return Reply(broker_.CreateTopic(*std::move(topic)), &TopicJson);
  }

  HttpResponse UpdateTopic() {
    auto result = [&]() -> StatusOr<Topic> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"topic", "updateMask"}));
      Json const* t = Field(body, "topic");
      if (t == nullptr) return InvalidArgumentError("The request is missing a topic");
      FERRY_ASSIGN_OR_RETURN(auto patch, TopicFromJson(*t));
      FERRY_RETURN_IF_ERROR(ReconcileName(patch.name, name_));
      Json const* mask = Field(body, "updateMask");
      std::vector<std::string> paths;
      if (mask != nullptr && mask->is_string()) paths = ParseMask(mask->get<std::string>());
      return broker_.UpdateTopic(patch, paths);
    }();
    return Reply(result, &TopicJson);
  }

  HttpResponse ListTopics() {
    auto size = PageSize(req_);
    if (!size.ok()) return ErrorResponse(size.status());
    auto page = broker_.ListTopics(project_, *size, req_.Query("pageToken"));
    if (!page.ok()) return ErrorResponse(page.status());
    Json out = Json::object();
    if (!page->items.empty()) {
      Json list = Json::array();
      for (auto const& t : page->items) list.push_back(TopicToJson(t));
      out["topics"] = std::move(list);
    }
    if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
    return JsonResponse(out);
  }

  HttpResponse ListTopicSubscriptions() {
    auto size = PageSize(req_);
    if (!size.ok()) return ErrorResponse(size.status());
    auto page = broker_.ListTopicSubscriptions(name_, *size, req_.Query("pageToken"));
    if (!page.ok()) return ErrorResponse(page.status());
    Json out = Json::object();
    if (!page->items.empty()) out["subscriptions"] = page->items;
    if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
    return JsonResponse(out);
  }

  HttpResponse Publish() {
    auto result = [&]() -> StatusOr<std::vector<std::string>> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"messages"}));
      Json const* list = Field(body, "messages");
      if (list == nullptr || !list->is_array()) return InvalidArgumentError("The request contains no messages");
      std::vector<PubsubMessage> messages;
      messages.reserve(list->size());
      std::size_t bytes = 0;
      for (auto const& item : *list) {
        FERRY_ASSIGN_OR_RETURN(auto m, MessageFromJson(item));
        bytes += m.data.size() + m.ordering_key.size();
        for (auto const& [k, v] : m.attributes) bytes += k.size() + v.size();
        messages.push_back(std::move(m));
      }
      if (bytes > kMaxPublishRequestBytes) {
        return InvalidArgumentError("Request payload size exceeds the limit: " +
                                    std::to_string(kMaxPublishRequestBytes) + " bytes.");
      }
      return broker_.Publish(name_, std::move(messages));
    }();
    if (!result.ok()) return ErrorResponse(result.status());
    return JsonResponse(Json{{"messageIds", *result}});
  }

  HttpResponse CreateSubscription() {
    auto body = ParseBody(req_);
    if (!body.ok()) return ErrorResponse(body.status());
    auto sub = SubscriptionFromJson(*body);
    if (!sub.ok()) return ErrorResponse(sub.status());
    if (auto st = ReconcileName(sub->name, name_); !st.ok()) return ErrorResponse(st);
    return Reply(broker_.CreateSubscription(*std::move(sub)), &SubscriptionJson);
  }

  HttpResponse UpdateSubscription() {
    auto result = [&]() -> StatusOr<Subscription> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"subscription", "updateMask"}));
      Json const* s = Field(body, "subscription");
      if (s == nullptr) return InvalidArgumentError("The request is missing a subscription");
      FERRY_ASSIGN_OR_RETURN(auto patch, SubscriptionFromJson(*s));
      FERRY_RETURN_IF_ERROR(ReconcileName(patch.name, name_));
      Json const* mask = Field(body, "updateMask");
      std::vector<std::string> paths;
      if (mask != nullptr && mask->is_string()) paths = ParseMask(mask->get<std::string>());
      return broker_.UpdateSubscription(patch, paths);
    }();
    return Reply(result, &SubscriptionJson);
  }

  HttpResponse ListSubscriptions() {
    auto size = PageSize(req_);
    if (!size.ok()) return ErrorResponse(size.status());
    auto page = broker_.ListSubscriptions(project_, *size, req_.Query("pageToken"));
    if (!page.ok()) return ErrorResponse(page.status());
    Json out = Json::object();
    if (!page->items.empty()) {
      Json list = Json::array();
      for (auto const& s : page->items) list.push_back(SubscriptionJson(s));
      out["subscriptions"] = std::move(list);
    }
    if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
    return JsonResponse(out);
  }

  HttpResponse Pull() {
    auto result = [&]() -> StatusOr<std::vector<ReceivedMessage>> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"maxMessages", "returnImmediately"}));
      FERRY_ASSIGN_OR_RETURN(int max, IntField(body, "maxMessages"));
      FERRY_ASSIGN_OR_RETURN(bool immediately, BoolField(body, "returnImmediately"));
      return broker_.Pull(name_, max, immediately);
    }();
    if (!result.ok()) return ErrorResponse(result.status());
    return HttpResponse{200, "application/json", PullResponseJson(*result), {}};
  }

  HttpResponse Acknowledge() {
    auto st = [&]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"ackIds"}));
      FERRY_ASSIGN_OR_RETURN(auto ids, StringList(body, "ackIds"));
      return broker_.Acknowledge(name_, ids);
    }();
    return Reply(st);
  }

  HttpResponse ModifyAckDeadline() {
    auto st = [&]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"ackIds", "ackDeadlineSeconds"}));
      FERRY_ASSIGN_OR_RETURN(auto ids, StringList(body, "ackIds"));
      FERRY_ASSIGN_OR_RETURN(int seconds, IntField(body, "ackDeadlineSeconds"));
      return broker_.ModifyAckDeadline(name_, ids, seconds);
    }();
    return Reply(st);
  }

  // ModifyPushConfig is UpdateSubscription of pushConfig alone; an absent config makes it a pull subscription.
  HttpResponse ModifyPushConfig() {
    auto st = [&]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"pushConfig"}));
      Json wrapped = Json::object();
      if (Json const* config = Field(body, "pushConfig")) wrapped["pushConfig"] = *config;
      FERRY_ASSIGN_OR_RETURN(auto patch, SubscriptionFromJson(wrapped));
      patch.name = name_;
      return broker_.UpdateSubscription(patch, {"pushConfig"}).status();
    }();
    return Reply(st);
  }

  HttpResponse CreateSnapshot() {
    auto result = [&]() -> StatusOr<Snapshot> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"subscription", "labels", "tags"}));
      FERRY_ASSIGN_OR_RETURN(auto subscription, StringField(body, "subscription"));
      if (subscription.empty()) return InvalidArgumentError("A snapshot needs a subscription");
      FERRY_ASSIGN_OR_RETURN(auto labels, LabelsField(body));
      return broker_.CreateSnapshot(name_, subscription, std::move(labels));
    }();
    return Reply(result, &SnapshotJson);
  }

  HttpResponse UpdateSnapshot() {
    auto result = [&]() -> StatusOr<Snapshot> {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"snapshot", "updateMask"}));
      Json const* s = Field(body, "snapshot");
      if (s == nullptr || !s->is_object()) return InvalidArgumentError("The request is missing a snapshot");
      FERRY_RETURN_IF_ERROR(CheckFields(*s, {"name", "topic", "expireTime", "labels"}));
      Snapshot patch;
      FERRY_ASSIGN_OR_RETURN(patch.name, StringField(*s, "name"));
      if (patch.name.empty()) patch.name = name_;
      FERRY_RETURN_IF_ERROR(ReconcileName(patch.name, name_));
      FERRY_ASSIGN_OR_RETURN(patch.labels, LabelsField(*s));
      FERRY_ASSIGN_OR_RETURN(auto expire, StringField(*s, "expireTime"));
      if (!expire.empty()) {
        FERRY_ASSIGN_OR_RETURN(patch.expire_time_ms, ParseRfc3339(expire));
      }
      Json const* mask = Field(body, "updateMask");
      std::vector<std::string> paths;
      if (mask != nullptr && mask->is_string()) paths = ParseMask(mask->get<std::string>());
      return broker_.UpdateSnapshot(patch, paths);
    }();
    return Reply(result, &SnapshotJson);
  }

  HttpResponse ListSnapshots() {
    auto size = PageSize(req_);
    if (!size.ok()) return ErrorResponse(size.status());
    auto page = broker_.ListSnapshots(project_, *size, req_.Query("pageToken"));
    if (!page.ok()) return ErrorResponse(page.status());
    Json out = Json::object();
    if (!page->items.empty()) {
      Json list = Json::array();
      for (auto const& s : page->items) list.push_back(SnapshotJson(s));
      out["snapshots"] = std::move(list);
    }
    if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
    return JsonResponse(out);
  }

  HttpResponse ListTopicSnapshots() {
    auto size = PageSize(req_);
    if (!size.ok()) return ErrorResponse(size.status());
    auto page = broker_.ListTopicSnapshots(name_, *size, req_.Query("pageToken"));
    if (!page.ok()) return ErrorResponse(page.status());
    Json out = Json::object();
    if (!page->items.empty()) out["snapshots"] = page->items;
    if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
    return JsonResponse(out);
  }

  HttpResponse Seek() {
    auto st = [&]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto body, ParseBody(req_));
      FERRY_RETURN_IF_ERROR(CheckFields(body, {"time", "snapshot"}));
      FERRY_ASSIGN_OR_RETURN(auto time, StringField(body, "time"));
      FERRY_ASSIGN_OR_RETURN(auto snapshot, StringField(body, "snapshot"));
      if (!time.empty() && !snapshot.empty()) return InvalidArgumentError("A seek takes a time or a snapshot, not both");
      if (!snapshot.empty()) return broker_.SeekToSnapshot(name_, snapshot);
      if (time.empty()) return InvalidArgumentError("A seek needs a time or a snapshot");
      FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseRfc3339(time));
      return broker_.SeekToTime(name_, ms);
    }();
    return Reply(st);
  }

  HttpResponse Metrics() {
    auto text = RenderMetrics(broker_);
    if (!text.ok()) return ErrorResponse(text.status());
    return HttpResponse{200, "text/plain; version=0.0.4", *std::move(text), {}};
  }

  Broker& broker_;
  HttpRequest const& req_;
  std::string project_;
  std::string name_;
};

}  // namespace

HttpResponse PubsubRestApi::Handle(HttpRequest const& request) { return Request(broker_, request).Route(); }

}  // namespace ferry
