// Cloud Scheduler Job bodies, as gcloud scheduler (or anyone) sends them: parsed, applied to a schedule with and
// without an update mask, normalized, and shown again. Never a crash; what passes normalization has a valid cron
// expression, zone and exactly one target (topic, function or HTTP uri), and its Job form dumps.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/json_codec.h"
#include "model/scheduler_job.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  auto parsed = ferry::ParseJsonText(text);
  if (!parsed.ok()) return 0;
  for (auto const& mask : {std::vector<std::string>{}, std::vector<std::string>{"schedule", "pubsubTarget.data"}}) {
    ferry::ScheduleSpec spec;
    spec.project = "p";
    spec.region = "us-central1";
    spec.name = "job";
    spec.time_zone.clear();
    if (!ferry::ApplyCloudSchedulerJob(*parsed, mask, spec).ok()) continue;
    if (!ferry::NormalizeScheduleSpec(spec).ok()) continue;
    if (!spec.topic.empty() + !spec.function.empty() + !spec.uri.empty() != 1) std::abort();
    (void)ferry::SafeDump(ferry::CloudSchedulerJobJson(spec, {}));
  }
  return 0;
}
