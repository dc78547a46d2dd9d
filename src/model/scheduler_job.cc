#include "model/scheduler_job.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/time_util.h"
#include "common/utf8.h"

namespace ferry {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDescription = 500;  // Cloud Scheduler's limit

Status Bad(std::string const& what) { return InvalidArgumentError("Invalid JSON payload received. " + what); }

bool Masked(std::vector<std::string> const& mask, json const& job, std::string const& field) {
  if (mask.empty()) return job.contains(field);
  return std::any_of(mask.begin(), mask.end(), [&](std::string const& m) {
    return m == field || m.rfind(field + ".", 0) == 0;
  });
}

Status String(json const& v, std::string const& field, std::string& out) {
  if (v.is_null()) {
    out.clear();
    return OkStatus();
  }
  if (!v.is_string()) return Bad("Invalid value at 'job." + field + "': expected a string");
  out = v.get<std::string>();
  return OkStatus();
}

// Whether a patch sets `target`.`field`: the body has it, and the mask names the field or the whole target (or
// there is no mask).
bool TargetWants(std::vector<std::string> const& mask, json const& t, std::string const& target, char const* field) {
  std::string path = target + "." + field;
  return (mask.empty() || std::find(mask.begin(), mask.end(), target) != mask.end() ||
          std::find(mask.begin(), mask.end(), path) != mask.end()) &&
         t.contains(field);
}

Status ApplyPubsubTarget(json const& t, std::vector<std::string> const& mask, ScheduleSpec& spec) {
  if (!t.is_object()) return Bad("Invalid value at 'job.pubsub_target': expected an object");
  for (auto const& [k, v] : t.items()) {
    if (k != "topicName" && k != "data" && k != "attributes") return Bad("Unknown name \"" + k + "\" at 'job.pubsub_target'");
  }
  auto wants = [&](char const* field) { return TargetWants(mask, t, "pubsubTarget", field); };
  spec.function.clear();
  if (!spec.uri.empty()) {  // another kind of target: what the HTTP one had goes
    spec.uri.clear();
    spec.http_method.clear();
    spec.http_headers.clear();
    spec.data.clear();
  }
  if (wants("topicName")) {
    if (Status st = String(t["topicName"], "pubsub_target.topic_name", spec.topic); !st.ok()) return st;
  }
  if (wants("data")) {
    std::string encoded;
    if (Status st = String(t["data"], "pubsub_target.data", encoded); !st.ok()) return st;
    auto data = Base64Decode(encoded);
    if (!data) return Bad("Invalid value at 'job.pubsub_target.data' (TYPE_BYTES), Base64 decoding failed");
    if (!IsValidUtf8(*data)) {
      return InvalidArgumentError("pubsubTarget.data: Ferry keeps a job's message data as text, and this is not UTF-8");
    }
    spec.data = *std::move(data);
  }
  if (wants("attributes")) {
    json const& a = t["attributes"];
    if (!a.is_object() && !a.is_null()) return Bad("Invalid value at 'job.pubsub_target.attributes': expected a map");
    spec.attributes.clear();
    if (a.is_object()) {
      for (auto const& [k, v] : a.items()) {
        if (!v.is_string()) return Bad("Invalid value at 'job.pubsub_target.attributes[" + k + "]': expected a string");
        spec.attributes[k] = v.get<std::string>();
      }
    }
  }
  return OkStatus();
}

Status ApplyHttpTarget(json const& t, std::vector<std::string> const& mask, ScheduleSpec& spec) {
  if (!t.is_object()) return Bad("Invalid value at 'job.http_target': expected an object");
  for (auto const& [k, v] : t.items()) {
    if (k == "oauthToken" || k == "oidcToken") {
      return InvalidArgumentError("Ferry does not mint Google's OAuth or OIDC tokens for a job: give the target's "
                                  "credentials as a header (--headers Authorization=...)");
    }
    if (k != "uri" && k != "httpMethod" && k != "headers" && k != "body") {
      return Bad("Unknown name \"" + k + "\" at 'job.http_target'");
    }
  }
  auto wants = [&](char const* field) { return TargetWants(mask, t, "httpTarget", field); };
  if (spec.uri.empty()) {  // another kind of target before: what it had goes
    spec.topic.clear();
    spec.function.clear();
    spec.attributes.clear();
    spec.data.clear();
  }
  if (wants("uri")) {
    if (Status st = String(t["uri"], "http_target.uri", spec.uri); !st.ok()) return st;
  }
  if (wants("httpMethod")) {
    if (Status st = String(t["httpMethod"], "http_target.http_method", spec.http_method); !st.ok()) return st;
    if (spec.http_method == "HTTP_METHOD_UNSPECIFIED") spec.http_method.clear();
  }
  if (wants("body")) {
    std::string encoded;
    if (Status st = String(t["body"], "http_target.body", encoded); !st.ok()) return st;
    auto body = Base64Decode(encoded);
    if (!body) return Bad("Invalid value at 'job.http_target.body' (TYPE_BYTES), Base64 decoding failed");
    if (!IsValidUtf8(*body)) {
      return InvalidArgumentError("httpTarget.body: Ferry keeps a job's body as text, and this is not UTF-8");
    }
    spec.data = *std::move(body);
  }
  if (wants("headers")) {
    json const& h = t["headers"];
    if (!h.is_object() && !h.is_null()) return Bad("Invalid value at 'job.http_target.headers': expected a map");
    spec.http_headers.clear();
    if (h.is_object()) {
      for (auto const& [k, v] : h.items()) {
        if (!v.is_string()) return Bad("Invalid value at 'job.http_target.headers[" + k + "]': expected a string");
        spec.http_headers[k] = v.get<std::string>();
      }
    }
  }
  return OkStatus();
}

Status ApplyRetryConfig(json const& r, ScheduleSpec& spec) {
  if (!r.is_object()) return Bad("Invalid value at 'job.retry_config': expected an object");
  for (auto const& [k, v] : r.items()) {
    if (k == "retryCount") {
      if (!v.is_number_integer()) return Bad("Invalid value at 'job.retry_config.retry_count': expected an integer");
      spec.retry_count = static_cast<int>(std::clamp<int64_t>(v.get<int64_t>(), -1, 1000));
    } else if (k == "minBackoffDuration") {
      if (!v.is_string()) return Bad("Invalid value at 'job.retry_config.min_backoff_duration'");
      auto ms = ParseProtoDuration(v.get<std::string>());
      if (!ms.ok()) return Bad("Invalid value at 'job.retry_config.min_backoff_duration': " + ms.status().message());
      spec.min_backoff_ms = *ms;
    } else if (k == "maxBackoffDuration" || k == "maxRetryDuration" || k == "maxDoublings") {
      // Accepted as Cloud Scheduler's defaults: Ferry doubles the backoff after each retry without a cap.
    } else {
      return Bad("Unknown name \"" + k + "\" at 'job.retry_config'");
    }
  }
  return OkStatus();
}

}  // namespace

Status ApplyCloudSchedulerJob(json const& job, std::vector<std::string> const& mask, ScheduleSpec& spec) {
  if (!job.is_object()) return Bad("Invalid value at 'job': expected an object");
  static constexpr char const* kOutputOnly[] = {"name", "state", "status", "userUpdateTime", "scheduleTime",
                                                "lastAttemptTime", "attemptDeadline"};
  for (auto const& [k, v] : job.items()) {
    bool known = k == "description" || k == "schedule" || k == "timeZone" || k == "pubsubTarget" ||
                 k == "retryConfig" || k == "httpTarget" || k == "appEngineHttpTarget" ||
                 std::find(std::begin(kOutputOnly), std::end(kOutputOnly), k) != std::end(kOutputOnly);
    if (!known) return Bad("Unknown name \"" + k + "\" at 'job': Cannot find field.");
  }
  if (job.contains("appEngineHttpTarget")) {
    return Status(StatusCode::kUnimplemented,
                  "Ferry runs Cloud Scheduler jobs with Pub/Sub and HTTP targets; App Engine targets are not "
                  "supported: use an HTTP target, or publish to a topic that a function consumes");
  }
  if (Masked(mask, job, "description")) {
    if (Status st = String(job.value("description", json()), "description", spec.description); !st.ok()) return st;
    if (spec.description.size() > kMaxDescription) return InvalidArgumentError("description is longer than 500 bytes");
  }
  if (Masked(mask, job, "schedule")) {
    if (Status st = String(job.value("schedule", json()), "schedule", spec.schedule); !st.ok()) return st;
  }
  if (Masked(mask, job, "timeZone")) {
    if (Status st = String(job.value("timeZone", json()), "time_zone", spec.time_zone); !st.ok()) return st;
  }
  if (spec.time_zone.empty()) spec.time_zone = "Etc/UTC";
  if (Masked(mask, job, "pubsubTarget") && job.contains("pubsubTarget")) {
    if (Status st = ApplyPubsubTarget(job["pubsubTarget"], mask, spec); !st.ok()) return st;
  }
  if (Masked(mask, job, "httpTarget") && job.contains("httpTarget")) {
    if (job.contains("pubsubTarget")) return InvalidArgumentError("A job has one target: pubsubTarget or httpTarget");
    if (Status st = ApplyHttpTarget(job["httpTarget"], mask, spec); !st.ok()) return st;
  }
  if (Masked(mask, job, "retryConfig") && job.contains("retryConfig")) {
    if (Status st = ApplyRetryConfig(job["retryConfig"], spec); !st.ok()) return st;
  }
  return OkStatus();
}

json CloudSchedulerJobJson(ScheduleSpec const& spec, ScheduleView const& view) {
  json j{{"name", ScheduleResourceName(spec)}};
  if (!spec.description.empty()) j["description"] = spec.description;
  if (!spec.topic.empty()) {
    json t{{"topicName", spec.topic}, {"data", Base64Encode(spec.data)}};
    if (!spec.attributes.empty()) t["attributes"] = spec.attributes;
    j["pubsubTarget"] = t;
  } else if (!spec.uri.empty()) {
    json t{{"uri", spec.uri}, {"httpMethod", spec.http_method.empty() ? "POST" : spec.http_method}};
    if (!spec.http_headers.empty()) t["headers"] = spec.http_headers;
    if (!spec.data.empty()) t["body"] = Base64Encode(spec.data);
    j["httpTarget"] = t;
  } else {
    // A deploy file's function target, which Cloud Scheduler has no kind for: shown as the call it makes.
    j["httpTarget"] = {{"uri", "ferry:functions/" + spec.function}, {"httpMethod", "POST"}};
  }
  j["schedule"] = spec.schedule;
  j["timeZone"] = spec.time_zone;
  j["state"] = view.paused ? "PAUSED" : "ENABLED";
  if (view.next_fire_ms >= 0 && !view.paused) j["scheduleTime"] = FormatRfc3339(view.next_fire_ms);
  if (view.last_fired_ms > 0) j["lastAttemptTime"] = FormatRfc3339(view.last_fired_ms);
  j["retryConfig"] = {{"retryCount", spec.retry_count},
                      {"maxRetryDuration", "0s"},
                      {"minBackoffDuration", FormatProtoDuration(spec.min_backoff_ms)},
                      {"maxBackoffDuration", "3600s"},
                      {"maxDoublings", 5}};
  j["attemptDeadline"] = "180s";
  return j;
}

}  // namespace ferry
