#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/bucket.h"
#include "model/function_spec.h"
#include "model/schedule_spec.h"

namespace ferry {

// A deploy: the whole desired state of one project's functions, schedules and buckets (what it leaves out is
// deleted), and topics it wants to exist. From a deploy file (deploy/deploy_file.h) or the admin API.
struct DeployRequest {
  std::string project;
  std::vector<std::string> topics;      // short or full names
  std::vector<FunctionSpec> functions;  // every function of the project: the ones missing are deleted
  std::vector<ScheduleSpec> schedules;  // every schedule of the project, likewise
  std::vector<BucketRecord> buckets;    // every bucket of the project (name and absolute path), likewise
  bool dry_run = false;
  // false: a deploy of just what it names (gcloud functions deploy: one function), which deletes nothing and
  // leaves the project's schedules and buckets as they are: gcloud functions deploy (one function), and
  // ferry deploy --github-workflow (a workflow's deploy steps). In the admin API's JSON only when false.
  bool prune = true;
};

// One line of a deploy plan: "create topic projects/p/topics/bar".
struct PlanItem {
  std::string action;  // create, change, delete, unchanged
  std::string kind;    // topic, subscription, function, schedule, bucket
  std::string name;
  friend bool operator==(PlanItem const&, PlanItem const&) = default;
};

struct DeployResult {
  std::vector<PlanItem> plan;
  bool applied = false;
  // What the deploy has to say besides the plan, each naming its function: a runtime version that differs from the
  // installed one, and the output of a dependency install (pip) that ran.
  std::vector<std::string> notes;
};

// The request as the admin API takes it (POST /ferry/v1/deploy), and back. Decoding is strict about types;
// `default_project` applies when the body names none. What the values mean is checked when the deploy is planned.
nlohmann::json DeployRequestToJson(DeployRequest const& request);
StatusOr<DeployRequest> DeployRequestFromJson(nlohmann::json const& body, std::string const& default_project);

}  // namespace ferry
