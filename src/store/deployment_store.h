#pragma once

#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"
#include "store/bucket_store.h"
#include "store/schedule_store.h"

namespace ferry {

// A deployed function, stored as its JSON spec (model/function_spec.h) under its full name.
struct FunctionRecord {
  std::string name;  // projects/{p}/locations/{r}/functions/{f}
  std::string spec;  // JSON
};

// Everything one deploy changes, applied in one transaction: all of it or none.
struct Deployment {
  std::vector<Topic> create_topics;
  std::vector<Subscription> create_subscriptions;
  std::vector<Subscription> update_subscriptions;
  std::vector<std::string> delete_subscriptions;
  std::vector<FunctionRecord> put_functions;
  std::vector<std::string> delete_functions;
  // A new spec and next tick; an existing schedule keeps its last tick and whether it is paused.
  std::vector<ScheduleRecord> put_schedules;
  std::vector<std::string> delete_schedules;
  std::vector<BucketRecord> put_buckets;
  std::vector<std::string> delete_buckets;
};

// What is deployed: functions, and (with the topics, subscriptions, schedules and buckets a deploy declares)
// every change a deploy makes, in one transaction.
class DeploymentStore {
 public:
  virtual ~DeploymentStore() = default;

  // Applies a deploy atomically. Creating something that exists, or changing something missing, fails it whole.
  [[nodiscard]] virtual Status ApplyDeployment(Deployment const& deployment) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<FunctionRecord>> ListFunctions() = 0;
};

}  // namespace ferry
