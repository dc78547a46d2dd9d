#include "model/json_codec.h"

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/json_depth.h"
#include "common/json_escape.h"
#include "common/time_util.h"

namespace ferry {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

Status UnknownField(std::string_view where, std::string_view key) {
  return InvalidArgumentError("Invalid JSON payload received. Unknown name " + Quote(key) + " at '" +
                              std::string(where) + "': Cannot find field.");
}

// Names the value's JSON type, never the value: it may be huge, deep, or not fit to echo.
Status BadValue(std::string_view where, std::string_view key, std::string_view type, Json const& value) {
  return InvalidArgumentError("Invalid value at '" + std::string(where) + "." + std::string(key) + "' (" +
                              std::string(type) + "), got a " + value.type_name());
}

template <typename J>
StatusOr<J> ParseText(std::string_view text) {
  if (!JsonNestingWithin(text)) {
    return InvalidArgumentError("Invalid JSON payload received. Nested deeper than " + std::to_string(kMaxJsonDepth) +
                                " levels.");
  }
  try {
    return J::parse(text);
  } catch (nlohmann::json::exception const& e) {
    return InvalidArgumentError(std::string("Invalid JSON payload received. ") + e.what());
  }
}

// Calls `on_field(camel_name, value)` for each member; the callback returns false for an unknown name.
template <typename F>
Status ForEachField(Json const& json, std::string_view where, F&& on_field) {
  if (!json.is_object()) {
    return InvalidArgumentError("Invalid JSON payload received. '" + std::string(where) + "' is not an object.");
  }
  for (auto const& [key, value] : json.items()) {
    StatusOr<bool> known = on_field(ToLowerCamel(key), value);
    if (!known.ok()) return known.status();
    if (!*known) return UnknownField(where, key);
  }
  return OkStatus();
}

StatusOr<std::string> GetString(Json const& v, std::string_view where, std::string_view key) {
  if (v.is_null()) return std::string();
  if (!v.is_string()) return BadValue(where, key, "TYPE_STRING", v);
  return v.get<std::string>();
}

StatusOr<bool> GetBool(Json const& v, std::string_view where, std::string_view key) {
  if (v.is_null()) return false;
  if (!v.is_boolean()) return BadValue(where, key, "TYPE_BOOL", v);
  return v.get<bool>();
}

// proto3 JSON accepts an int32 as a number or a decimal string.
StatusOr<int> GetInt(Json const& v, std::string_view where, std::string_view key) {
  if (v.is_null()) return 0;
  if (v.is_number_integer()) {
    auto n = v.get<int64_t>();
    if (n >= INT32_MIN && n <= INT32_MAX) return static_cast<int>(n);
  } else if (v.is_string()) {
    auto const& s = v.get_ref<std::string const&>();
    try {
      std::size_t used = 0;
      long long n = std::stoll(s, &used);
      if (used == s.size() && n >= INT32_MIN && n <= INT32_MAX) return static_cast<int>(n);
    } catch (std::exception const&) {
    }
  }
  return BadValue(where, key, "TYPE_INT32", v);
}

StatusOr<int64_t> GetDuration(Json const& v, std::string_view where, std::string_view key) {
  if (!v.is_string()) return BadValue(where, key, "google.protobuf.Duration", v);
  auto ms = ParseProtoDuration(v.get_ref<std::string const&>());
  if (!ms.ok()) return BadValue(where, key, "google.protobuf.Duration", v);
  return *ms;
}

StatusOr<Attributes> GetMap(Json const& v, std::string_view where, std::string_view key) {
  Attributes out;
  if (v.is_null()) return out;
  if (!v.is_object()) return BadValue(where, key, "map", v);
  for (auto const& [k, val] : v.items()) {
    if (!val.is_string()) return BadValue(where, std::string(key) + "[" + k + "]", "TYPE_STRING", val);
    out.emplace(k, val.get<std::string>());
  }
  return out;
}

// Assigns the parsed value to `out` or returns the error from the enclosing lambda.
#define FERRY_ASSIGN_FIELD(out, expr)    \
  do {                                   \
    auto _v = (expr);                    \
    if (!_v.ok()) return _v.status();    \
    out = *std::move(_v);                \
  } while (false)

Json MapToJson(Attributes const& m) {
  Json j = Json::object();
  for (auto const& [k, v] : m) j[k] = v;
  return j;
}

}  // namespace

std::string SafeDump(nlohmann::json const& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
std::string SafeDump(nlohmann::ordered_json const& json) {
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}
StatusOr<nlohmann::json> ParseJsonText(std::string_view text) { return ParseText<nlohmann::json>(text); }
StatusOr<Json> ParseOrderedJsonText(std::string_view text) { return ParseText<Json>(text); }

std::string ToLowerCamel(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool upper = false;
  for (char c : name) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

Json TopicToJson(Topic const& topic) {
  Json j;
  j["name"] = topic.name;
  if (!topic.labels.empty()) j["labels"] = MapToJson(topic.labels);
  if (topic.message_retention_ms) j["messageRetentionDuration"] = FormatProtoDuration(*topic.message_retention_ms);
  return j;
}

StatusOr<Topic> TopicFromJson(Json const& json, std::string_view where) {
  Topic t;
  auto st = ForEachField(json, where, [&](std::string const& key, Json const& v) -> StatusOr<bool> {
    if (key == "name") {
      FERRY_ASSIGN_FIELD(t.name, GetString(v, where, key));
    } else if (key == "labels") {
      FERRY_ASSIGN_FIELD(t.labels, GetMap(v, where, key));
    } else if (key == "messageRetentionDuration") {
      if (!v.is_null()) FERRY_ASSIGN_FIELD(t.message_retention_ms, GetDuration(v, where, key));
    } else if (key == "kmsKeyName" || key == "messageStoragePolicy" || key == "schemaSettings" ||
               key == "satisfiesPzs" || key == "state" || key == "ingestionDataSourceSettings" ||
               key == "messageTransforms") {
      // Accepted and ignored: they configure Google-side services Ferry has no counterpart for.
    } else {
      return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  return t;
}

Json SubscriptionToJson(Subscription const& s) {
  Json j;
  j["name"] = s.name;
  j["topic"] = s.topic;
  Json push = Json::object();
  if (!s.push_config.push_endpoint.empty()) push["pushEndpoint"] = s.push_config.push_endpoint;
  if (!s.push_config.attributes.empty()) push["attributes"] = MapToJson(s.push_config.attributes);
  if (s.push_config.no_wrapper) {
    Json nw = Json::object();
    if (s.push_config.write_metadata) nw["writeMetadata"] = true;
    push["noWrapper"] = nw;
  }
  j["pushConfig"] = push;
  j["ackDeadlineSeconds"] = s.ack_deadline_seconds;
  if (s.retain_acked_messages) j["retainAckedMessages"] = true;
  j["messageRetentionDuration"] = FormatProtoDuration(s.message_retention_ms);
  if (!s.labels.empty()) j["labels"] = MapToJson(s.labels);
  if (s.enable_message_ordering) j["enableMessageOrdering"] = true;
  if (s.expiration_ttl_ms) {
    Json ep = Json::object();
    if (*s.expiration_ttl_ms > 0) ep["ttl"] = FormatProtoDuration(*s.expiration_ttl_ms);
    j["expirationPolicy"] = ep;
  }
  if (!s.filter.empty()) j["filter"] = s.filter;
  if (s.dead_letter_policy) {
    j["deadLetterPolicy"] = {{"deadLetterTopic", s.dead_letter_policy->dead_letter_topic},
                             {"maxDeliveryAttempts", s.dead_letter_policy->max_delivery_attempts}};
  }
  if (s.retry_policy) {
    j["retryPolicy"] = {{"minimumBackoff", FormatProtoDuration(s.retry_policy->minimum_backoff_ms)},
                        {"maximumBackoff", FormatProtoDuration(s.retry_policy->maximum_backoff_ms)}};
  }
  if (s.detached) j["detached"] = true;
  if (s.enable_exactly_once_delivery) j["enableExactlyOnceDelivery"] = true;
  return j;
}

StatusOr<Subscription> SubscriptionFromJson(Json const& json, std::string_view where_view) {
  std::string where(where_view);
  Subscription s;
  s.message_retention_ms = 0;  // 0 = unset; NormalizeSubscription fills the default
  s.ack_deadline_seconds = 0;
  auto st = ForEachField(json, where, [&](std::string const& key, Json const& v) -> StatusOr<bool> {
    if (key == "name") {
      FERRY_ASSIGN_FIELD(s.name, GetString(v, where, key));
    } else if (key == "topic") {
      FERRY_ASSIGN_FIELD(s.topic, GetString(v, where, key));
    } else if (key == "pushConfig") {
      if (v.is_null()) return true;
      std::string pw = where + ".push_config";
      auto pst = ForEachField(v, pw, [&](std::string const& k, Json const& pv) -> StatusOr<bool> {
        if (k == "pushEndpoint") {
          FERRY_ASSIGN_FIELD(s.push_config.push_endpoint, GetString(pv, pw, k));
        } else if (k == "attributes") {
          FERRY_ASSIGN_FIELD(s.push_config.attributes, GetMap(pv, pw, k));
        } else if (k == "noWrapper") {
          s.push_config.no_wrapper = !pv.is_null();
          if (pv.is_object() && pv.contains("writeMetadata")) {
            FERRY_ASSIGN_FIELD(s.push_config.write_metadata, GetBool(pv["writeMetadata"], pw, "writeMetadata"));
          }
        } else if (k == "oidcToken" || k == "pubsubWrapper") {
          // Accepted; Ferry does not mint OIDC tokens, and the wrapper is the default.
        } else {
          return false;
        }
        return true;
      });
      if (!pst.ok()) return pst;
    } else if (key == "ackDeadlineSeconds") {
      FERRY_ASSIGN_FIELD(s.ack_deadline_seconds, GetInt(v, where, key));
    } else if (key == "retainAckedMessages") {
      FERRY_ASSIGN_FIELD(s.retain_acked_messages, GetBool(v, where, key));
    } else if (key == "messageRetentionDuration") {
      if (!v.is_null()) FERRY_ASSIGN_FIELD(s.message_retention_ms, GetDuration(v, where, key));
    } else if (key == "labels") {
      FERRY_ASSIGN_FIELD(s.labels, GetMap(v, where, key));
    } else if (key == "enableMessageOrdering") {
      FERRY_ASSIGN_FIELD(s.enable_message_ordering, GetBool(v, where, key));
    } else if (key == "expirationPolicy") {
      if (v.is_null()) return true;
      std::string ew = where + ".expiration_policy";
      s.expiration_ttl_ms = 0;  // present without ttl: never expires
      auto est = ForEachField(v, ew, [&](std::string const& k, Json const& ev) -> StatusOr<bool> {
        if (k != "ttl") return false;
        if (!ev.is_null()) FERRY_ASSIGN_FIELD(s.expiration_ttl_ms, GetDuration(ev, ew, k));
        return true;
      });
      if (!est.ok()) return est;
    } else if (key == "filter") {
      FERRY_ASSIGN_FIELD(s.filter, GetString(v, where, key));
    } else if (key == "deadLetterPolicy") {
      if (v.is_null()) return true;
      std::string dw = where + ".dead_letter_policy";
      DeadLetterPolicy dlp;
      dlp.max_delivery_attempts = 0;
      auto dst = ForEachField(v, dw, [&](std::string const& k, Json const& dv) -> StatusOr<bool> {
        if (k == "deadLetterTopic") {
          FERRY_ASSIGN_FIELD(dlp.dead_letter_topic, GetString(dv, dw, k));
        } else if (k == "maxDeliveryAttempts") {
          FERRY_ASSIGN_FIELD(dlp.max_delivery_attempts, GetInt(dv, dw, k));
        } else {
          return false;
        }
        return true;
      });
      if (!dst.ok()) return dst;
      s.dead_letter_policy = dlp;
    } else if (key == "retryPolicy") {
      if (v.is_null()) return true;
      std::string rw = where + ".retry_policy";
      RetryPolicy rp;
      auto rst = ForEachField(v, rw, [&](std::string const& k, Json const& rv) -> StatusOr<bool> {
        if (k == "minimumBackoff") {
          FERRY_ASSIGN_FIELD(rp.minimum_backoff_ms, GetDuration(rv, rw, k));
        } else if (k == "maximumBackoff") {
          FERRY_ASSIGN_FIELD(rp.maximum_backoff_ms, GetDuration(rv, rw, k));
        } else {
          return false;
        }
        return true;
      });
      if (!rst.ok()) return rst;
      s.retry_policy = rp;
    } else if (key == "detached") {
      FERRY_ASSIGN_FIELD(s.detached, GetBool(v, where, key));
    } else if (key == "enableExactlyOnceDelivery") {
      FERRY_ASSIGN_FIELD(s.enable_exactly_once_delivery, GetBool(v, where, key));
    } else if (key == "topicMessageRetentionDuration" || key == "state" || key == "bigqueryConfig" ||
               key == "cloudStorageConfig" || key == "analyticsHubSubscriptionInfo" ||
               key == "messageTransforms") {
      // Output-only, or exports to Google services Ferry does not have: accepted and ignored.
    } else {
      return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  return s;
}

Json MessageToJson(PubsubMessage const& m) {
  Json j;
  if (!m.data.empty()) j["data"] = Base64Encode(m.data);
  if (!m.attributes.empty()) j["attributes"] = MapToJson(m.attributes);
  j["messageId"] = m.message_id;
  j["publishTime"] = FormatRfc3339(m.publish_time_ms);
  if (!m.ordering_key.empty()) j["orderingKey"] = m.ordering_key;
  return j;
}

StatusOr<PubsubMessage> MessageFromJson(Json const& json, std::string_view where_view) {
  std::string where(where_view);
  PubsubMessage m;
  auto st = ForEachField(json, where, [&](std::string const& key, Json const& v) -> StatusOr<bool> {
    if (key == "data") {
      std::string text;
      FERRY_ASSIGN_FIELD(text, GetString(v, where, key));
      auto bytes = Base64Decode(text);
      if (!bytes) return BadValue(where, "data", "TYPE_BYTES", v);
      m.data = *std::move(bytes);
    } else if (key == "attributes") {
      FERRY_ASSIGN_FIELD(m.attributes, GetMap(v, where, key));
    } else if (key == "orderingKey") {
      FERRY_ASSIGN_FIELD(m.ordering_key, GetString(v, where, key));
    } else if (key == "messageId" || key == "publishTime") {
      // Set by the server; a client's value is ignored, as Google does.
    } else {
      return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  return m;
}

Json ReceivedMessageToJson(ReceivedMessage const& r) {
  Json j;
  j["ackId"] = r.ack_id;
  j["message"] = MessageToJson(r.message);
  if (r.delivery_attempt > 0) j["deliveryAttempt"] = r.delivery_attempt;
  return j;
}

std::string PullResponseJson(std::vector<ReceivedMessage> const& received) {
  if (received.empty()) return "{}";
  std::string out;
  out.reserve(received.size() * 256);
  out += "{\"receivedMessages\":[";
  for (std::size_t i = 0; i < received.size(); ++i) {
    auto const& r = received[i];
    auto const& m = r.message;
    if (i > 0) out += ',';
    out += "{\"ackId\":";
    AppendJsonString(out, r.ack_id);
    out += ",\"message\":{";
    if (!m.data.empty()) {
      out += "\"data\":\"";
      out += Base64Encode(m.data);
      out += "\",";
    }
    if (!m.attributes.empty()) {
      out += "\"attributes\":{";
      bool first = true;
      for (auto const& [k, v] : m.attributes) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, k);
        out += ':';
        AppendJsonString(out, v);
      }
      out += "},";
    }
    out += "\"messageId\":";
    AppendJsonString(out, m.message_id);
    out += ",\"publishTime\":\"";
    out += FormatRfc3339(m.publish_time_ms);
    out += '"';
    if (!m.ordering_key.empty()) {
      out += ",\"orderingKey\":";
      AppendJsonString(out, m.ordering_key);
    }
    out += '}';
    if (r.delivery_attempt > 0) {
      out += ",\"deliveryAttempt\":";
      out += std::to_string(r.delivery_attempt);
    }
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace ferry
