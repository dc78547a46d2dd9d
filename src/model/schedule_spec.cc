#include "model/schedule_spec.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include <nlohmann/json.hpp>

#include "schedule/cron.h"

namespace ferry {

std::string ScheduleResourceName(ScheduleSpec const& spec) {
  return "projects/" + spec.project + "/locations/" + spec.region + "/jobs/" + spec.name;
}

nlohmann::json ScheduleSpecToJson(ScheduleSpec const& s) {
  nlohmann::json j{{"project", s.project},
          {"name", s.name},
          {"region", s.region},
          {"schedule", s.schedule},
          {"time_zone", s.time_zone},
          {"description", s.description},
          {"topic", s.topic},
          {"data", s.data},
          {"attributes", s.attributes},
          {"function", s.function},
          {"retry_count", s.retry_count},
          {"min_backoff_ms", s.min_backoff_ms},
          {"catch_up_ms", s.catch_up_ms},
          {"created_by", s.created_by}};
  if (!s.uri.empty()) j["uri"] = s.uri;  // newer settings only when set: older stored specs read back the same
  if (!s.http_method.empty()) j["http_method"] = s.http_method;
  if (!s.http_headers.empty()) j["http_headers"] = s.http_headers;
  return j;
}

StatusOr<ScheduleSpec> ScheduleSpecFromJson(nlohmann::json const& json) {
  if (!json.is_object()) return InvalidArgumentError("a schedule must be an object");
  ScheduleSpec s;
  for (auto const& item : json.items()) {
    // Named, not bound: the lambda below captures them, which clang 14 (the fuzz build's) allows only for names.
    std::string const& key = item.key();
    nlohmann::json const& v = item.value();
    auto wrong = [&](char const* type) {
      return InvalidArgumentError("schedule setting \"" + key + "\" must be " + type);
    };
    std::string* str = key == "project"       ? &s.project
                       : key == "name"        ? &s.name
                       : key == "region"      ? &s.region
                       : key == "schedule"    ? &s.schedule
                       : key == "time_zone"   ? &s.time_zone
                       : key == "description" ? &s.description
                       : key == "topic"       ? &s.topic
                       : key == "data"        ? &s.data
                       : key == "function"    ? &s.function
                       : key == "created_by"  ? &s.created_by
                       : key == "uri"         ? &s.uri
                       : key == "http_method" ? &s.http_method
                                              : nullptr;
    if (str != nullptr) {
      if (!v.is_string()) return wrong("a string");
      *str = v.get<std::string>();
    } else if (key == "attributes" || key == "http_headers") {
      if (!v.is_object()) return wrong("a map of strings");
      for (auto const& [k, value] : v.items()) {
        if (!value.is_string()) return wrong("a map of strings");
        (key == "attributes" ? s.attributes : s.http_headers)[k] = value.get<std::string>();
      }
    } else if (key == "retry_count" || key == "min_backoff_ms" || key == "catch_up_ms") {
      if (!v.is_number_integer()) return wrong("a whole number");
      if (key == "retry_count") {
        int64_t n = v.get<int64_t>();
        if (n < 0 || n > 5 || (v.is_number_unsigned() && v.get<uint64_t>() > 5)) return wrong("between 0 and 5");
        s.retry_count = static_cast<int>(n);
      }
      if (key == "min_backoff_ms") s.min_backoff_ms = v.get<int64_t>();
      if (key == "catch_up_ms") s.catch_up_ms = v.get<int64_t>();
    } else {
      return InvalidArgumentError("unknown schedule setting \"" + key + "\"");
    }
  }
  return s;
}

Status NormalizeScheduleSpec(ScheduleSpec& s) {
  auto fail = [&](std::string const& what) { return InvalidArgumentError("schedule " + s.name + ": " + what); };
  if (!IsValidResourceId(s.name)) {
    return InvalidArgumentError("invalid schedule name \"" + s.name + "\" (3-255 letters, digits, - _ . ~ + %, "
                                "starting with a letter)");
  }
  if (!IsValidProjectId(s.project)) return fail("invalid project id (lowercase letters, digits and '-')");
  if (!IsValidRegionId(s.region)) return fail("invalid region (lowercase letters, digits and '-', as us-central1)");
  if (s.time_zone.empty()) s.time_zone = "UTC";
  if (auto cron = CronSchedule::Parse(s.schedule); !cron.ok()) return fail(cron.status().message());
  if (auto zone = TimeZone::Load(s.time_zone); !zone.ok()) return fail(zone.status().message());
  if (!s.topic.empty() + !s.function.empty() + !s.uri.empty() != 1) {
    return fail("give exactly one target: topic, function or an HTTP uri");
  }
  if (!s.uri.empty()) {
    if ((s.uri.rfind("http://", 0) != 0 && s.uri.rfind("https://", 0) != 0) || s.uri.size() > 2048 ||
        s.uri.find_first_of(" \r\n\t") != std::string::npos) {
      return fail("uri must be an absolute http:// or https:// URL, not \"" + s.uri.substr(0, 200) + "\"");
    }
    if (s.http_method.empty()) s.http_method = "POST";
    static constexpr char const* kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    if (std::find(std::begin(kMethods), std::end(kMethods), s.http_method) == std::end(kMethods)) {
      return fail("http method must be GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS, not \"" + s.http_method + "\"");
    }
    if (s.http_headers.size() > 100) return fail("at most 100 headers");
    for (auto const& [k, v] : s.http_headers) {
      bool token = !k.empty() && k.size() <= 256 && std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) !=
                                                                    std::string_view::npos;
      });
      if (!token || v.size() > 8192 || v.find_first_of("\r\n") != std::string::npos) {
        return fail("header \"" + k.substr(0, 100) + "\" is not a valid HTTP header");
      }
    }
  } else if (!s.http_method.empty() || !s.http_headers.empty()) {
    return fail("http method and headers belong to an HTTP target");
  }
  if (!s.topic.empty()) {
    if (s.topic.rfind("projects/", 0) != 0) s.topic = MakeResourceName(s.project, ResourceKind::kTopic, s.topic);
    if (auto parsed = ParseResourceName(s.topic, ResourceKind::kTopic); !parsed.ok()) {
      return fail("topic: " + parsed.status().message());
    }
    if (s.data.empty() && s.attributes.empty()) return fail("a topic target needs data or attributes");
  }
  if (s.retry_count < 0 || s.retry_count > 5) return fail("retry_count must be between 0 and 5");
  if (s.min_backoff_ms < 0 || s.min_backoff_ms > 3'600'000) return fail("min_backoff must be between 0s and 1h");
  if (s.catch_up_ms < 0 || s.catch_up_ms > 7LL * 86'400'000) return fail("catch_up must be between 0s and 7d");
  return OkStatus();
}

}  // namespace ferry
