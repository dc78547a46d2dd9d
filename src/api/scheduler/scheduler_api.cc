#include "api/scheduler/scheduler_api.h"

#include <nlohmann/json.hpp>

#include "common/split.h"
#include "model/json_codec.h"
#include "model/scheduler_job.h"

namespace ferry {
namespace {

using nlohmann::json;

HttpResponse Reply(json const& body) { return {200, "application/json", SafeDump(body), {}}; }

json JobJson(ScheduleState const& s) {
  return CloudSchedulerJobJson(s.spec, {s.next_fire_ms, s.last_fired_ms, s.paused});
}


}  // namespace

bool SchedulerApi::Serves(std::string_view path) {
  if (path.rfind("/v1/projects/", 0) != 0) return false;
  auto parts = Split(path.substr(1), '/');  // v1 projects {p} locations {r} jobs [{j}]
  return parts.size() >= 6 && parts.size() <= 7 && parts[3] == "locations" && parts[5] == "jobs";
}

HttpResponse SchedulerApi::Handle(HttpRequest const& req) {
  auto parts = Split(std::string_view(req.path).substr(1), '/');
  std::string project(parts[2]), region(parts[4]);
  if (!IsValidProjectId(project)) return ErrorResponse(InvalidArgumentError("Invalid project id \"" + project + "\""));
  if (!IsValidRegionId(region)) return ErrorResponse(InvalidArgumentError("Invalid location \"" + region + "\""));
  std::string const parent = "projects/" + project + "/locations/" + region;

  if (parts.size() == 6) {  // the collection
    if (req.method == "GET") {
      auto list = scheduler_.List(project);
      if (!list.ok()) return ErrorResponse(list.status());
      json jobs = json::array();
      for (auto const& s : *list) {
        if (s.spec.region == region || region == "-") jobs.push_back(JobJson(s));
      }
      return Reply(jobs.empty() ? json::object() : json{{"jobs", jobs}});
    }
    if (req.method != "POST") return MethodNotAllowed(req, "GET, POST");
    auto body = ParseJsonText(req.body);
    if (!body.ok()) return ErrorResponse(body.status());
    if (!body->is_object() || !(*body)["name"].is_string()) {
      return ErrorResponse(InvalidArgumentError("A job needs a name: " + parent + "/jobs/JOB_ID"));
    }
    std::string name = (*body)["name"].get<std::string>();
    if (name.rfind(parent + "/jobs/", 0) != 0) {
      return ErrorResponse(InvalidArgumentError("Job name \"" + name + "\" is not under " + parent));
    }
    ScheduleSpec spec;
    spec.project = project;
    spec.region = region;
    spec.name = name.substr(parent.size() + 6);
    spec.time_zone.clear();  // Cloud Scheduler's default, Etc/UTC, unless the job gives one
    spec.min_backoff_ms = 5'000;
    if (Status st = ApplyCloudSchedulerJob(*body, {}, spec); !st.ok()) return ErrorResponse(st);
    if (Status st = NormalizeScheduleSpec(spec); !st.ok()) return ErrorResponse(st);
    if (Status st = scheduler_.Create(spec); !st.ok()) return ErrorResponse(st);
    auto created = scheduler_.Get(ScheduleResourceName(spec));
    return created.ok() ? Reply(JobJson(*created)) : ErrorResponse(created.status());
  }

  // One job: {j}, {j}:run, {j}:pause, {j}:resume.
  std::string_view last = parts[6];
  auto colon = last.find(':');
  std::string id(last.substr(0, colon));
  std::string verb = colon == std::string_view::npos ? "" : std::string(last.substr(colon + 1));
  if (!IsValidResourceId(id)) return ErrorResponse(InvalidArgumentError("Invalid job id \"" + id + "\""));
  std::string const name = parent + "/jobs/" + id;
  if (!verb.empty()) {
    if (req.method != "POST") return MethodNotAllowed(req, "POST");
    Status st = verb == "run"      ? scheduler_.RunNow(name)
                : verb == "pause"  ? scheduler_.Pause(name)
                : verb == "resume" ? scheduler_.Resume(name)
                                   : NotFoundError("Unknown job method \"" + verb + "\" (run, pause, resume)");
    if (!st.ok()) return ErrorResponse(st);
  } else if (req.method == "DELETE") {
    if (Status st = scheduler_.Delete(name); !st.ok()) return ErrorResponse(st);
    return Reply(json::object());
  } else if (req.method == "PATCH") {
    auto old = scheduler_.Get(name);
    if (!old.ok()) return ErrorResponse(old.status());
    auto body = ParseJsonText(req.body);
    if (!body.ok()) return ErrorResponse(body.status());
    std::vector<std::string> mask;
    std::string const update_mask = req.Query("updateMask");  // named: Split's views point into it
    for (auto m : Split(update_mask, ',')) {
      if (!m.empty()) mask.emplace_back(m);
    }
    ScheduleSpec spec = old->spec;
    if (Status st = ApplyCloudSchedulerJob(*body, mask, spec); !st.ok()) return ErrorResponse(st);
    if (Status st = NormalizeScheduleSpec(spec); !st.ok()) return ErrorResponse(st);
    if (Status st = scheduler_.Replace(spec); !st.ok()) return ErrorResponse(st);
  } else if (req.method != "GET") {
    return MethodNotAllowed(req, "GET, PATCH, DELETE");
  }
  auto state = scheduler_.Get(name);
  return state.ok() ? Reply(JobJson(*state)) : ErrorResponse(state.status());
}

}  // namespace ferry
