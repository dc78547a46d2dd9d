#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

// A schedule (a Cloud Scheduler job) as the deploy file declares it (PRODUCT.md sections 5 and 8): a cron
// expression in a time zone, and a target: publish `data` and `attributes` to a topic, invoke a function, or make an
// HTTP request (`data` as its body).
struct ScheduleSpec {
  std::string project;
  std::string name;                // the short id: "nightly-bar"
  std::string region = "local";
  std::string schedule;            // unix cron, 5 fields, or @daily and friends
  std::string time_zone = "UTC";   // IANA name
  std::string description;
  std::string topic;               // a full topic name, or empty
  std::string data;                // the message data, as written
  Attributes attributes;
  std::string function;            // a function id of the same project, or empty
  // An HTTP target (Cloud Scheduler's httpTarget, gcloud scheduler jobs create http): the request made at each
  // tick, checked against ferry serve's push policy as push endpoints are (control/scheduler.h). Or empty.
  std::string uri;
  std::string http_method;  // GET, POST (the default), PUT, DELETE, PATCH, HEAD or OPTIONS
  Attributes http_headers;
  int retry_count = 0;             // a failed function invocation is tried again this many times
  int64_t min_backoff_ms = 5'000;  // before the first retry, doubling after each
  // A tick that fell while Ferry was down fires once on start when it is at most this old; older ones are skipped.
  int64_t catch_up_ms = 3'600'000;
  // Who manages it: "" for a deploy file (ferry deploy creates, changes and deletes it), kCreatedByApi for the
  // Cloud Scheduler API (gcloud scheduler), which a deploy never changes or deletes (docs/gcloud.md).
  std::string created_by;

  friend bool operator==(ScheduleSpec const&, ScheduleSpec const&) = default;
};

inline constexpr char kCreatedByApi[] = "cloudscheduler-api";

// "projects/{p}/locations/{region}/jobs/{name}".
std::string ScheduleResourceName(ScheduleSpec const& spec);

nlohmann::json ScheduleSpecToJson(ScheduleSpec const& spec);
// Strict: an unknown key or a wrong type is INVALID_ARGUMENT naming it.
StatusOr<ScheduleSpec> ScheduleSpecFromJson(nlohmann::json const& json);

// Checks the name, the cron expression, the time zone (it must exist in the tz database), and that exactly one
// target is given; makes a short topic name full. An HTTP target's uri must be an absolute http:// or https:// URL.
Status NormalizeScheduleSpec(ScheduleSpec& spec);

}  // namespace ferry
