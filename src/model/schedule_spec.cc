#include "model/schedule_spec.h"

#include <nlohmann/json.hpp>

#include "schedule/cron.h"

namespace ferry {

std::string ScheduleResourceName(ScheduleSpec const& spec) {
  return "projects/" + spec.project + "/locations/" + spec.region + "/jobs/" + spec.name;
}

nlohmann::json ScheduleSpecToJson(ScheduleSpec const& s) {
  return {{"project", s.project},
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
                                              : nullptr;
    if (str != nullptr) {
      if (!v.is_string()) return wrong("a string");
      *str = v.get<std::string>();
    } else if (key == "attributes") {
      if (!v.is_object()) return wrong("a map of strings");
      for (auto const& [k, value] : v.items()) {
        if (!value.is_string()) return wrong("a map of strings");
        s.attributes[k] = value.get<std::string>();
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
  if (s.topic.empty() == s.function.empty()) return fail("give exactly one target: topic or function");
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
