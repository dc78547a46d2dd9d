#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/deploy_request.h"
#include "store/deployment_store.h"

namespace ferry {

// What a deploy of one project finds stored, as far as it concerns it.
struct DeployedState {
  std::set<std::string> topics;                       // which of the topics the deploy wants exist
  std::map<std::string, Subscription> subscriptions;  // the trigger subscriptions that exist, by name
  std::vector<FunctionSpec> functions;                // the project's functions
  std::vector<ScheduleRecord> schedules;              // every schedule, of every project
  std::vector<BucketRecord> buckets;                  // every bucket, of every project
  std::set<std::string> running;                      // functions running as deployed (full names)
};

// What a deploy does: the plan shown to the user, the one store transaction, and the instances to change.
struct DeployPlan {
  std::vector<PlanItem> items;
  Deployment change;
  std::vector<FunctionSpec> to_launch;  // created, changed, or deployed but not running
  std::vector<std::string> to_stop;     // changed or deleted (full names)
};

// Every topic a deploy wants to exist (full names, each once, in the order they come): its own, its functions'
// trigger and dead-letter topics, its schedules' topics and its buckets' event topics. `request` is normalized.
std::vector<std::string> WantedTopics(DeployRequest const& request);
// The trigger subscription names the plan looks up: those of the request's functions and of `stored` ones.
std::vector<std::string> TriggerSubscriptionsOf(DeployRequest const& request, std::vector<FunctionSpec> const& stored);

// The difference between a normalized, valid `request` (FunctionService::Deploy checks it) and `state`, with new
// and changed schedules starting from their next tick after `now_ms`. A pure function: nothing is read or changed.
// ALREADY_EXISTS when the request declares a bucket another project holds.
StatusOr<DeployPlan> PlanDeploy(DeployRequest const& request, DeployedState const& state, int64_t now_ms);

}  // namespace ferry
