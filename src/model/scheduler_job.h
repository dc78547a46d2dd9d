#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/schedule_spec.h"

namespace ferry {

// Cloud Scheduler v1's Job resource (google.cloud.scheduler.v1.Job, JSON) and Ferry's schedules. Ferry runs Pub/Sub
// and HTTP targets; App Engine targets, and OAuth or OIDC tokens on HTTP targets, are refused. Cloud Scheduler's defaults apply: Etc/UTC when
// no time zone is given; retryConfig's retryCount 0 and minBackoffDuration 5s.

// The fields of a Job body that `mask` names (every field the body has when `mask` is empty) applied to `spec`:
// create starts from a spec with only project, region and name set, patch from the stored one. INVALID_ARGUMENT
// (in Google's words) for a field that is unknown or of the wrong type, or data that is not text; the result is
// not yet normalized (NormalizeScheduleSpec checks schedule, zone and target).
Status ApplyCloudSchedulerJob(nlohmann::json const& job, std::vector<std::string> const& mask, ScheduleSpec& spec);

struct ScheduleView {  // what a Job shows besides the spec
  int64_t next_fire_ms = -1;
  int64_t last_fired_ms = 0;
  bool paused = false;
};
nlohmann::json CloudSchedulerJobJson(ScheduleSpec const& spec, ScheduleView const& view);

}  // namespace ferry
