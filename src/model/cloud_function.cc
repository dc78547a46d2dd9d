#include "model/cloud_function.h"

#include <set>

#include <nlohmann/json.hpp>

#include "common/split.h"
#include "common/time_util.h"

namespace ferry {
namespace {

using nlohmann::json;

constexpr char kLegacyPubsubEvent[] = "providers/cloud.pubsub/eventTypes/topic.publish";
constexpr char kLegacyStorageEvent[] = "providers/cloud.storage/eventTypes/object.change";

Status Invalid(std::string const& message) { return InvalidArgumentError(message); }

Status UnknownField(std::string const& field) {
  return Invalid("Invalid JSON payload received. Unknown name \"" + field + "\" at 'function': Cannot find field.");
}

// int32 fields come as JSON numbers, or as strings of digits (proto3 JSON allows both).
StatusOr<int64_t> Int32(json const& v, std::string const& field) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() ? v.get<uint64_t>() <= 2147483647u
                               : (v.get<int64_t>() >= -2147483648LL && v.get<int64_t>() <= 2147483647LL)) {
      return v.get<int64_t>();
    }
  } else if (v.is_string()) {
    std::string const& s = v.get_ref<std::string const&>();
    if (!s.empty() && s.size() <= 10 && s.find_first_not_of("0123456789") == std::string::npos) {
      int64_t n = std::stoll(s);
      if (n <= 2147483647LL) return n;
    }
  }
  return Invalid("Invalid value at 'function." + field + "' (TYPE_INT32)");
}

StatusOr<std::string> String(json const& v, std::string const& field) {
  if (!v.is_string()) return Invalid("Invalid value at 'function." + field + "' (TYPE_STRING)");
  return v.get<std::string>();
}

StatusOr<Attributes> StringMap(json const& v, std::string const& field) {
  if (!v.is_object()) return Invalid("Invalid value at 'function." + field + "': a map of strings");
  Attributes out;
  for (auto const& [k, value] : v.items()) {
    if (!value.is_string()) return Invalid("Invalid value at 'function." + field + "[" + k + "]' (TYPE_STRING)");
    out[k] = value.get<std::string>();
  }
  return out;
}

// A google.protobuf.Duration in JSON ("540s", "1.5s"), rounded up to whole seconds.
StatusOr<int> Seconds(json const& v) {
  if (v.is_string()) {
    auto ms = ParseProtoDuration(v.get_ref<std::string const&>());
    if (ms.ok() && *ms >= 0 && *ms <= int64_t{1'000'000'000} * 1000) return static_cast<int>((*ms + 999) / 1000);
  }
  return Invalid("Invalid value at 'function.timeout' (type.googleapis.com/google.protobuf.Duration): a duration "
                 "such as \"540s\"");
}

Status ReadEventTrigger(json const& trigger, FunctionSpec& spec) {
  if (!trigger.is_object()) return Invalid("Invalid value at 'function.event_trigger': an object");
  std::string type, resource;
  for (auto const& [key, v] : trigger.items()) {
    if (key == "eventType") {
      auto s = String(v, "event_trigger.event_type");
      if (!s.ok()) return s.status();
      type = *s;
    } else if (key == "resource") {
      auto s = String(v, "event_trigger.resource");
      if (!s.ok()) return s.status();
      resource = *s;
    } else if (key == "failurePolicy") {
      if (!v.is_object()) return Invalid("Invalid value at 'function.event_trigger.failure_policy': an object");
      for (auto const& [k, retry] : v.items()) {
        if (k != "retry") return UnknownField("eventTrigger.failurePolicy." + k);
        if (!retry.is_object()) return Invalid("Invalid value at 'function.event_trigger.failure_policy.retry'");
        spec.retry = true;
      }
    } else if (key != "service") {
      return UnknownField("eventTrigger." + key);
    }
  }
  if (type == kPubsubTrigger || type == kLegacyPubsubEvent) {
    spec.trigger_type = kPubsubTrigger;
    if (resource.rfind("projects/", 0) != 0) {
      return Invalid("The event trigger's resource must be a topic's full name (projects/{project}/topics/{topic}), "
                     "not \"" + resource + "\"");
    }
  } else if (IsStorageTrigger(type) || type == kLegacyStorageEvent) {
    spec.trigger_type = type == kLegacyStorageEvent ? "google.storage.object.finalize" : type;
  } else {
    return Invalid("Ferry does not trigger functions on event type \"" + type + "\": it runs " +
                   std::string(kPubsubTrigger) + " (--trigger-topic), google.storage.object.finalize, delete, " +
                   "archive and metadataUpdate (--trigger-bucket), and HTTP (--trigger-http)");
  }
  spec.trigger_resource = resource;
  return OkStatus();
}

}  // namespace

json CloudFunctionToJson(FunctionSpec const& s, CloudFunctionOptions const& options) {
  auto values = [&](Attributes const& map) {
    json out = json::object();
    for (auto const& [k, v] : map) out[k] = options.hide_values ? "(hidden)" : v;
    return out;
  };
  std::string runtime = s.google_runtime;
  if (runtime.empty()) {
    // Ferry's runtimes by the names Cloud Functions gives them (Debian 12's Python is 3.11, the machine's Node 20).
    runtime = s.runtime == "python3" ? "python311" : s.runtime == "nodejs" ? "nodejs20" : s.runtime;
  }
  json j{{"name", FunctionResourceName(s)},
         {"entryPoint", s.entry_point},
         {"runtime", runtime},
         {"timeout", std::to_string(s.timeout_seconds) + "s"},
         {"availableMemoryMb", s.memory_mb},
         {"maxInstances", s.max_instances},
         {"serviceAccountEmail", s.project + "@appspot.gserviceaccount.com"},
         {"ingressSettings", "ALLOW_ALL"},
         {"versionId", std::to_string(std::max<int64_t>(s.version_id, 1))}};
  if (s.update_time_ms > 0) j["updateTime"] = FormatRfc3339(s.update_time_ms);
  if (s.min_instances > 0) j["minInstances"] = s.min_instances;
  if (!s.env_vars.empty()) j["environmentVariables"] = values(s.env_vars);
  if (!s.build_environment_variables.empty()) j["buildEnvironmentVariables"] = values(s.build_environment_variables);
  if (!s.labels.empty()) j["labels"] = s.labels;
  if (s.trigger_type == kHttpTrigger) {
    j["httpsTrigger"] = {{"url", options.base_url + "/" + FunctionResourceName(s)},
                         {"securityLevel", "SECURE_OPTIONAL"}};
  } else {
    json trigger{{"eventType", s.trigger_type}};
    if (s.trigger_type == kPubsubTrigger) {
      trigger["resource"] = s.trigger_resource;
      trigger["service"] = "pubsub.googleapis.com";
    } else {
      trigger["resource"] = "projects/_/buckets/" + s.trigger_resource;
      trigger["service"] = "storage.googleapis.com";
    }
    if (s.retry) trigger["failurePolicy"] = {{"retry", json::object()}};
    j["eventTrigger"] = trigger;
  }
  return j;
}

StatusOr<CloudFunctionRequest> CloudFunctionFromJson(json const& body, std::string const& name) {
  if (!body.is_object()) return Invalid("Invalid JSON payload received: a CloudFunction must be an object");
  auto parts = Split(name, '/');  // projects {p} locations {r} functions {id}
  if (parts.size() != 6 || parts[0] != "projects" || parts[2] != "locations" || parts[4] != "functions") {
    return Invalid("Invalid function name \"" + name + "\"");
  }
  CloudFunctionRequest out;
  FunctionSpec& s = out.spec;
  s.project = std::string(parts[1]);
  s.region = std::string(parts[3]);
  s.name = std::string(parts[5]);
  s.created_by = kCreatedByFunctionsApi;
  s.trigger_type.clear();
  bool http = false, event = false;
  // Settings that mean nothing on one machine's processes: accepted and not kept.
  static std::set<std::string> const kIgnored = {
      "@type", "description", "status", "updateTime", "versionId", "buildId", "buildName", "serviceAccountEmail",
      "network", "vpcConnector", "vpcConnectorEgressSettings", "ingressSettings", "kmsKeyName", "buildWorkerPool",
      "dockerRegistry", "dockerRepository", "sourceToken", "automaticUpdatePolicy", "onDeployUpdatePolicy",
      "buildServiceAccount"};
  for (auto const& [key, v] : body.items()) {
    Status st;
    if (key == "name") {
      auto given = String(v, "name");
      if (!given.ok()) return given.status();
      if (*given != name) return Invalid("The function's name \"" + *given + "\" does not match " + name);
    } else if (key == "entryPoint") {
      auto e = String(v, "entry_point");
      if (!e.ok()) return e.status();
      s.entry_point = *e;
    } else if (key == "runtime") {
      auto r = String(v, "runtime");
      if (!r.ok()) return r.status();
      s.runtime = FerryRuntime(*r);
      if (s.runtime.empty() || s.runtime == "command") {
        return Invalid("Unknown runtime \"" + *r + "\": Ferry runs python37 to python313 (with the system's "
                       "python3) and nodejs10 to nodejs22 (with the system's node)");
      }
      s.google_runtime = *r;
    } else if (key == "timeout") {
      auto t = Seconds(v);
      if (!t.ok()) return t.status();
      s.timeout_seconds = *t;
    } else if (key == "availableMemoryMb") {
      auto n = Int32(v, "available_memory_mb");
      if (!n.ok()) return n.status();
      s.memory_mb = *n;
    } else if (key == "maxInstances") {
      auto n = Int32(v, "max_instances");
      if (!n.ok()) return n.status();
      s.max_instances = *n == 0 ? kDefaultMaxInstances : static_cast<int>(*n);  // 0: not set
    } else if (key == "minInstances") {
      auto n = Int32(v, "min_instances");
      if (!n.ok()) return n.status();
      s.min_instances = static_cast<int>(*n);
    } else if (key == "environmentVariables") {
      auto m = StringMap(v, "environment_variables");
      if (!m.ok()) return m.status();
      s.env_vars = *std::move(m);
    } else if (key == "buildEnvironmentVariables") {
      auto m = StringMap(v, "build_environment_variables");
      if (!m.ok()) return m.status();
      s.build_environment_variables = *std::move(m);
    } else if (key == "labels") {
      auto m = StringMap(v, "labels");
      if (!m.ok()) return m.status();
      s.labels = *std::move(m);
    } else if (key == "httpsTrigger") {
      if (!v.is_object()) return Invalid("Invalid value at 'function.https_trigger': an object");
      for (auto const& [k, unused] : v.items()) {
        if (k != "url" && k != "securityLevel") return UnknownField("httpsTrigger." + k);
      }
      http = true;
      s.trigger_type = kHttpTrigger;
    } else if (key == "eventTrigger") {
      event = true;
      st = ReadEventTrigger(v, s);
    } else if (key == "sourceUploadUrl") {
      auto u = String(v, "source_upload_url");
      if (!u.ok()) return u.status();
      out.source_upload_url = *u;
    } else if (key == "sourceArchiveUrl" || key == "sourceRepository") {
      return Invalid("Ferry takes a function's source as an upload (gcloud functions deploy --source DIR), not "
                     "from " + key);
    } else if (key == "secretEnvironmentVariables" || key == "secretVolumes") {
      if (!v.is_array() || !v.empty()) {
        return Invalid(key + " is not served by Ferry: pass the values as environment variables");
      }
    } else if (!kIgnored.contains(key)) {
      return UnknownField(key);
    }
    if (!st.ok()) return st;
  }
  if (http && event) return Invalid("A function has one trigger: httpsTrigger or eventTrigger, not both");
  if (!http && !event) return Invalid("The function needs a trigger: httpsTrigger or eventTrigger");
  if (s.runtime.empty()) return Invalid("The function needs a runtime (--runtime), such as python311");
  return out;
}

}  // namespace ferry
