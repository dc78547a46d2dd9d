#include "model/function_spec.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

#include "model/sentry_dsn.h"

namespace ferry {

bool IsValidFunctionName(std::string_view name) {
  // Cloud Functions' rule: a letter first, then letters, digits, '-' and '_', at most 63 characters.
  if (name.empty() || name.size() > 63 || !std::isalpha(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

namespace {

using nlohmann::json;

// A short topic id made a full name in the function's project; a full name is checked.
StatusOr<std::string> FullTopicName(std::string const& project, std::string const& setting,
                                    std::string const& value) {
  if (value.rfind("projects/", 0) == 0) {
    auto parsed = ParseResourceName(value, ResourceKind::kTopic);
    if (!parsed.ok()) return InvalidArgumentError(setting + ": " + parsed.status().message());
    return value;
  }
  if (!IsValidResourceId(value)) return InvalidArgumentError(setting + ": invalid topic name \"" + value + "\"");
  return MakeResourceName(project, ResourceKind::kTopic, value);
}

Status Range(std::string const& setting, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return InvalidArgumentError(setting + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                ", not " + std::to_string(value));
  }
  return OkStatus();
}

}  // namespace

bool SameFunction(FunctionSpec a, FunctionSpec b) {
  a.version_id = b.version_id = 0;
  a.update_time_ms = b.update_time_ms = 0;
  return a == b;
}

std::string FerryRuntime(std::string const& google_runtime) {
  auto versioned = [&](std::string_view prefix, int lo, int hi) {
    if (google_runtime.rfind(prefix, 0) != 0) return false;
    std::string_view digits = std::string_view(google_runtime).substr(prefix.size());
    if (digits.empty() || digits.size() > 3 || digits[0] == '0' ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    int v = std::stoi(std::string(digits));
    return v >= lo && v <= hi;
  };
  if (google_runtime == "python3" || versioned("python3", 7, 13)) return "python3";
  if (google_runtime == "nodejs" || versioned("nodejs", 10, 22)) return "nodejs";
  if (google_runtime == "cpp" || google_runtime == "command") return google_runtime;
  return "";
}

std::string FunctionResourceName(FunctionSpec const& spec) {
  return "projects/" + spec.project + "/locations/" + spec.region + "/functions/" + spec.name;
}

bool IsStorageTrigger(std::string const& trigger_type) {
  return trigger_type == "google.storage.object.finalize" || trigger_type == "google.storage.object.delete" ||
         trigger_type == "google.storage.object.archive" || trigger_type == "google.storage.object.metadataUpdate";
}

std::string StorageEventsTopic(std::string const& project, std::string const& bucket) {
  return MakeResourceName(project, ResourceKind::kTopic, "ferry-storage-" + bucket);
}

std::string TriggerTopic(FunctionSpec const& spec) {
  if (spec.trigger_type == kPubsubTrigger) return spec.trigger_resource;
  if (IsStorageTrigger(spec.trigger_type)) return StorageEventsTopic(spec.project, spec.trigger_resource);
  return "";
}

std::string TriggerSubscriptionName(FunctionSpec const& spec) {
  std::string topic = TriggerTopic(spec);
  std::string topic_id = topic.substr(topic.rfind('/') + 1);
  return MakeResourceName(spec.project, ResourceKind::kSubscription,
                          "gcf-" + spec.name + "-" + spec.region + "-" + topic_id);
}

Subscription TriggerSubscription(FunctionSpec const& spec) {
  Subscription sub;
  sub.name = TriggerSubscriptionName(spec);
  sub.topic = TriggerTopic(spec);
  // A bucket's events share one topic; each storage function takes its own event type.
  if (IsStorageTrigger(spec.trigger_type)) sub.filter = "attributes.eventType = \"" + spec.trigger_type + "\"";
  // The dispatcher holds a message's lease for the whole invocation; the deadline outlasts the timeout so a
  // running invocation is never redelivered behind its back.
  sub.ack_deadline_seconds = std::clamp(spec.timeout_seconds + 30, kMinAckDeadlineSeconds, kMaxAckDeadlineSeconds);
  sub.retry_policy = RetryPolicy{spec.min_retry_delay_ms, spec.max_retry_delay_ms};
  if (!spec.dead_letter_topic.empty()) {
    sub.dead_letter_policy = DeadLetterPolicy{spec.dead_letter_topic, spec.max_delivery_attempts};
  }
  sub.labels["ferry-function"] = spec.name;
  return sub;
}

json FunctionSpecToJson(FunctionSpec const& s) {
  json j{
      {"project", s.project},
      {"name", s.name},
      {"region", s.region},
      {"entry_point", s.entry_point},
      {"runtime", s.runtime},
      {"source_dir", s.source_dir},
      {"command", s.command},
      {"env_vars", s.env_vars},
      {"build_environment_variables", s.build_environment_variables},
      {"signature_type", s.signature},
      {"event_trigger_type", s.trigger_type},
      {"event_trigger_resource", s.trigger_resource},
      {"event_trigger_retry", s.retry},
      {"dead_letter_topic", s.dead_letter_topic},
      {"max_delivery_attempts", s.max_delivery_attempts},
      {"min_retry_delay_ms", s.min_retry_delay_ms},
      {"max_retry_delay_ms", s.max_retry_delay_ms},
      {"max_instances", s.max_instances},
      {"min_instances", s.min_instances},
      {"concurrency", s.concurrency},
      {"memory_mb", s.memory_mb},
      {"timeout", s.timeout_seconds},
      {"allow_unauthenticated", s.allow_unauthenticated},
      {"sentry_dsn", s.sentry_dsn},
      {"source_hash", s.source_hash},
  };
  // Newer settings only when set, so what older versions stored reads back the same.
  if (!s.labels.empty()) j["labels"] = s.labels;
  if (!s.created_by.empty()) j["created_by"] = s.created_by;
  if (!s.google_runtime.empty()) j["google_runtime"] = s.google_runtime;
  if (!s.no_effect.empty()) j["no_effect"] = s.no_effect;
  if (s.version_id != 0) j["version_id"] = s.version_id;
  if (s.update_time_ms != 0) j["update_time_ms"] = s.update_time_ms;
  return j;
}

StatusOr<FunctionSpec> FunctionSpecFromJson(json const& j) {
  if (!j.is_object()) return InvalidArgumentError("a function must be an object");
  FunctionSpec s;
  for (auto const& item : j.items()) {
    // Named, not bound: the lambdas below capture them, which clang 14 (the fuzz build's) allows only for names.
    std::string const& key = item.key();
    json const& value = item.value();
    auto expect = [&](bool ok, char const* what) -> Status {
      if (ok) return OkStatus();
      return InvalidArgumentError("function setting \"" + key + "\" must be " + what);
    };
    Status st;
    auto str = [&](std::string& out) {
      st = expect(value.is_string(), "a string");
      if (st.ok()) out = value.get<std::string>();
    };
    auto integer = [&]<typename T>(T& out) {
      st = expect(value.is_number_integer(), "an integer");
      if (!st.ok()) return;
      // Range-checked before narrowing, so 4294967297 is refused rather than read as 1.
      bool fits = value.is_number_unsigned()
                      ? value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                      : value.get<int64_t>() >= std::numeric_limits<T>::min() &&
                            value.get<int64_t>() <= std::numeric_limits<T>::max();
      st = expect(fits, "an integer in range");
      if (st.ok()) out = static_cast<T>(value.get<int64_t>());
    };
    auto boolean = [&](bool& out) {
      st = expect(value.is_boolean(), "true or false");
      if (st.ok()) out = value.get<bool>();
    };
    auto map = [&](Attributes& out) {
      st = expect(value.is_object(), "a map of strings");
      for (auto const& [k, v] : value.items()) {
        if (!st.ok()) break;
        st = expect(v.is_string(), "a map of strings");
        if (st.ok()) out[k] = v.get<std::string>();
      }
    };
    if (key == "project") str(s.project);
    else if (key == "name") str(s.name);
    else if (key == "region") str(s.region);
    else if (key == "entry_point") str(s.entry_point);
    else if (key == "runtime") str(s.runtime);
    else if (key == "source_dir") str(s.source_dir);
    else if (key == "command") {
      st = expect(value.is_array(), "a list of strings");
      for (auto const& v : value) {
        if (!st.ok()) break;
        st = expect(v.is_string(), "a list of strings");
        if (st.ok()) s.command.push_back(v.get<std::string>());
      }
    } else if (key == "env_vars") map(s.env_vars);
    else if (key == "build_environment_variables") map(s.build_environment_variables);
    else if (key == "signature_type") str(s.signature);
    else if (key == "event_trigger_type") str(s.trigger_type);
    else if (key == "event_trigger_resource") str(s.trigger_resource);
    else if (key == "event_trigger_retry") boolean(s.retry);
    else if (key == "dead_letter_topic") str(s.dead_letter_topic);
    else if (key == "max_delivery_attempts") integer(s.max_delivery_attempts);
    else if (key == "min_retry_delay_ms") integer(s.min_retry_delay_ms);
    else if (key == "max_retry_delay_ms") integer(s.max_retry_delay_ms);
    else if (key == "max_instances") integer(s.max_instances);
    else if (key == "min_instances") integer(s.min_instances);
    else if (key == "concurrency") integer(s.concurrency);
    else if (key == "memory_mb") integer(s.memory_mb);
    else if (key == "timeout") integer(s.timeout_seconds);
    else if (key == "allow_unauthenticated") boolean(s.allow_unauthenticated);
    else if (key == "sentry_dsn") str(s.sentry_dsn);
    else if (key == "source_hash") str(s.source_hash);
    else if (key == "labels") map(s.labels);
    else if (key == "created_by") str(s.created_by);
    else if (key == "google_runtime") str(s.google_runtime);
    else if (key == "no_effect") map(s.no_effect);
    else if (key == "version_id") integer(s.version_id);
    else if (key == "update_time_ms") integer(s.update_time_ms);
    else return InvalidArgumentError("unknown function setting \"" + key + "\"");
    if (!st.ok()) return st;
  }
  return s;
}

Status NormalizeFunctionSpec(FunctionSpec& s) {
  if (!IsValidFunctionName(s.name)) {
    return InvalidArgumentError("invalid function name \"" + s.name +
                                "\": a letter first, then letters, digits, '-' or '_', at most 63 characters");
  }
  std::string const where = "function " + s.name + ": ";
  auto fail = [&](std::string const& message) { return InvalidArgumentError(where + message); };
  if (s.project.empty()) return fail("no project");
  if (!IsValidProjectId(s.project)) return fail("invalid project id (lowercase letters, digits and '-')");
  if (!IsValidRegionId(s.region)) return fail("invalid region (lowercase letters, digits and '-', as us-central1)");
  if (s.entry_point.empty()) s.entry_point = s.name;
  if (!s.sentry_dsn.empty()) {
    if (auto dsn = ParseSentryDsn(s.sentry_dsn); !dsn.ok()) return fail(dsn.status().message());
  }
  if (s.runtime != "cpp" && s.runtime != "command" && s.runtime != "nodejs" && s.runtime != "python3") {
    return fail("runtime must be cpp, command, nodejs or python3, not \"" + s.runtime + "\"");
  }
  if (s.labels.size() > 64) return fail("at most 64 labels");
  for (auto const& [k, v] : s.labels) {
    auto ok = [](std::string const& t, bool key) {
      if (t.size() > 63 || (key && (t.empty() || !std::islower(static_cast<unsigned char>(t[0]))))) return false;
      return std::all_of(t.begin(), t.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      });
    };
    if (!ok(k, true) || !ok(v, false)) {
      return fail("label \"" + k + "\": keys start with a lowercase letter; keys and values are at most 63 "
                  "lowercase letters, digits, '-' and '_'");
    }
  }
  if (s.runtime == "command" && s.command.empty()) return fail("runtime command needs a command");
  if (s.runtime != "command" && s.source_dir.empty()) return fail("runtime " + s.runtime + " needs a source_dir");
  if (s.trigger_type.empty()) s.trigger_type = kHttpTrigger;
  if (s.trigger_type == kPubsubTrigger) {
    if (s.trigger_resource.empty()) return fail("event_trigger_resource (the topic) is required");
    auto topic = FullTopicName(s.project, "event_trigger_resource", s.trigger_resource);
    if (!topic.ok()) return fail(topic.status().message());
    s.trigger_resource = *topic;
    if (s.signature != "event" && s.signature != "cloudevent") {
      return fail("signature_type must be event or cloudevent for a Pub/Sub trigger");
    }
  } else if (IsStorageTrigger(s.trigger_type)) {
    constexpr std::string_view kBuckets = "projects/_/buckets/";
    if (s.trigger_resource.rfind(kBuckets, 0) == 0) s.trigger_resource = s.trigger_resource.substr(kBuckets.size());
    if (!IsValidBucketName(s.trigger_resource)) {
      return fail("event_trigger_resource must be a bucket name, not \"" + s.trigger_resource + "\"");
    }
    if (s.signature != "event" && s.signature != "cloudevent") {
      return fail("signature_type must be event or cloudevent for a storage trigger");
    }
  } else if (s.trigger_type == kHttpTrigger) {
    s.signature = "http";
    s.trigger_resource.clear();
    if (s.retry) return fail("HTTP functions are never retried: remove event_trigger_retry");
  } else {
    return fail("event_trigger_type must be google.pubsub.topic.publish, google.storage.object.finalize, "
                "delete, archive or metadataUpdate, or http, not \"" + s.trigger_type + "\"");
  }
  if (!s.dead_letter_topic.empty()) {
    auto topic = FullTopicName(s.project, "dead_letter_topic", s.dead_letter_topic);
    if (!topic.ok()) return fail(topic.status().message());
    s.dead_letter_topic = *topic;
    if (s.dead_letter_topic == s.trigger_resource) return fail("dead_letter_topic must differ from the trigger topic");
  }
  auto check = [&](std::string const& setting, int64_t value, int64_t lo, int64_t hi) {
    auto st = Range(setting, value, lo, hi);
    return st.ok() ? st : fail(st.message());
  };
  for (auto const& st : {
           check("max_delivery_attempts", s.max_delivery_attempts, kMinMaxDeliveryAttempts, kMaxMaxDeliveryAttempts),
           check("min_retry_delay (ms)", s.min_retry_delay_ms, 0, kMaxBackoffMillis),
           check("max_retry_delay (ms)", s.max_retry_delay_ms, 0, kMaxBackoffMillis),
           check("max_instances", s.max_instances, 1, 1000),
           check("min_instances", s.min_instances, 0, s.max_instances),
           check("concurrency", s.concurrency, 1, 1000),
           check("memory_mb", s.memory_mb, 16, 32768),
           check("timeout", s.timeout_seconds, 1,
                 s.trigger_type == kHttpTrigger ? kMaxHttpFunctionTimeoutSeconds : kMaxEventFunctionTimeoutSeconds),
       }) {
    if (!st.ok()) return st;
  }
  if (s.min_retry_delay_ms > s.max_retry_delay_ms) return fail("min_retry_delay is larger than max_retry_delay");
  return OkStatus();
}

}  // namespace ferry
