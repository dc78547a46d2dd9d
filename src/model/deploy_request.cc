#include "model/deploy_request.h"

#include <nlohmann/json.hpp>

namespace ferry {

using nlohmann::json;

json DeployRequestToJson(DeployRequest const& request) {
  json functions = json::array();
  for (auto const& f : request.functions) functions.push_back(FunctionSpecToJson(f));
  json schedules = json::array();
  for (auto const& s : request.schedules) schedules.push_back(ScheduleSpecToJson(s));
  json buckets = json::array();
  for (auto const& b : request.buckets) {
    buckets.push_back({{"name", b.name}, {"path", b.path}, {"versioning", b.versioning}});
  }
  json out{{"project", request.project},
           {"topics", request.topics},
           {"buckets", buckets},
           {"functions", functions},
           {"schedules", schedules},
           {"dry_run", request.dry_run}};
  if (!request.prune) out["prune"] = false;
  return out;
}

StatusOr<DeployRequest> DeployRequestFromJson(json const& body, std::string const& default_project) {
  if (!body.is_object()) return InvalidArgumentError("Invalid JSON payload received");
  DeployRequest request;
  request.project = default_project;
  if (body.contains("project")) {
    if (!body["project"].is_string()) return InvalidArgumentError("\"project\" must be a string");
    request.project = body["project"].get<std::string>();
  }
  if (!IsValidProjectId(request.project)) return InvalidArgumentError("Invalid project id");
  if (body.contains("dry_run")) {
    if (!body["dry_run"].is_boolean()) return InvalidArgumentError("\"dry_run\" must be true or false");
    request.dry_run = body["dry_run"].get<bool>();
  }
  if (body.contains("prune")) {
    if (!body["prune"].is_boolean()) return InvalidArgumentError("\"prune\" must be true or false");
    request.prune = body["prune"].get<bool>();
  }
  if (body.contains("topics")) {
    if (!body["topics"].is_array()) return InvalidArgumentError("\"topics\" must be a list");
    for (auto const& t : body["topics"]) {
      if (!t.is_string()) return InvalidArgumentError("each topic must be a name");
      request.topics.push_back(t.get<std::string>());
    }
  }
  if (body.contains("functions")) {
    if (!body["functions"].is_array()) return InvalidArgumentError("\"functions\" must be a list");
    for (auto const& f : body["functions"]) {
      auto spec = FunctionSpecFromJson(f);
      if (!spec.ok()) return spec.status();
      request.functions.push_back(*std::move(spec));
    }
  }
  if (body.contains("buckets")) {
    if (!body["buckets"].is_array()) return InvalidArgumentError("\"buckets\" must be a list");
    for (auto const& b : body["buckets"]) {
      if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("path") ||
          !b["path"].is_string()) {
        return InvalidArgumentError("each bucket needs a name and a path");
      }
      bool versioning = false;
      if (b.contains("versioning")) {
        if (!b["versioning"].is_boolean()) return InvalidArgumentError("a bucket's versioning is true or false");
        versioning = b["versioning"].get<bool>();
      }
      request.buckets.push_back(
          {b["name"].get<std::string>(), request.project, b["path"].get<std::string>(), versioning});
    }
  }
  if (body.contains("schedules")) {
    if (!body["schedules"].is_array()) return InvalidArgumentError("\"schedules\" must be a list");
    for (auto const& s : body["schedules"]) {
      auto spec = ScheduleSpecFromJson(s);
      if (!spec.ok()) return spec.status();
      request.schedules.push_back(*std::move(spec));
    }
  }
  return request;
}

}  // namespace ferry
