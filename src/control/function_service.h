#pragma once

#include <array>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "common/clock.h"
#include "control/cluster_slots.h"
#include "control/sentry.h"
#include "functions/supervisor.h"
#include "model/deploy_request.h"
#include "model/function_spec.h"
#include "model/schedule_spec.h"
#include "store/execution_log.h"
#include "store/store.h"
#include "triggers/pubsub_trigger.h"

namespace ferry {

// How many instances of a function one node runs.
struct NodeInstances {
  std::string node;
  int running = 0;
  int busy = 0;
};

// A deployed function and how it runs.
struct FunctionState {
  FunctionSpec spec;
  std::string state;  // DEPLOYING, ACTIVE, or FAILED when it cannot run (the reason in `error`)
  std::string error;
  int instances_running = 0;  // on every node of a cluster
  int instances_busy = 0;
  std::vector<NodeInstances> nodes;  // in a cluster: each live node's part, by node name
};

struct CallResult {
  std::string execution_id;
  std::string status;  // ok, error, timeout, crash, oom
  int http_status = 0;
  std::string body;
  std::string error;
  std::vector<std::pair<std::string, std::string>> headers;  // the function's answer (HTTP functions)
};

struct FunctionServiceOptions {
  std::string data_dir = "./data";  // builds go under builds/
  std::function<void()> schedules_changed;  // called after a deploy changed schedules (wakes the scheduler)
  std::function<void()> buckets_changed;    // called after a deploy changed buckets (re-reads the watches)
  // Directories a bucket may live in (ferry serve --bucket-root): its path, links resolved, must be one of them or
  // below one, so a deploy cannot publish /etc through the storage API. Empty: any absolute path.
  std::vector<std::string> bucket_roots;
  // This node's name among nodes that share the store (empty: the only node). With one, every execution of a
  // function, on any node, holds one of its max_instances x concurrency slots (ClusterSlots), so the limit holds
  // across the cluster.
  std::string node;
  // Failed executions (error, timeout, crash, out of memory) are reported here unless the function names its own
  // sentry_dsn; either way the instance gets it as SENTRY_DSN, and its revision as SENTRY_RELEASE. Empty: none.
  std::string sentry_dsn;
  // The event loop HTTP calls run on (the HTTP server's): instances' output is read there too, so a call's log
  // lines reach it with no thread woken. It must outlive the service. Null: two reader threads an instance.
  boost::asio::io_context* output_loop = nullptr;
};

// The functions control plane: applies deploys (plan, build, one store transaction, then the running
// instances and triggers follow), runs what is deployed after a restart, records every execution and every line
// an instance writes in the ExecutionLog, and counts them for /metrics. Thread-safe; one deploy at a time.
class FunctionService {
 public:
  FunctionService(Store& store, Broker& broker, ExecutionLog& log, Clock& clock,
                  FunctionServiceOptions options);
  ~FunctionService();

  // Starts every deployed function. A function that cannot start (its build fails) is FAILED, not fatal.
  void Start();
  // Brings what runs here in line with what the store says is deployed: a deploy another node applied to the
  // database they share. Starts the new and changed functions, stops the deleted ones, and calls
  // schedules_changed or buckets_changed when those changed. Cheap when nothing changed; a deploy on this node
  // in progress makes it return at once.
  void Follow();
  // Stops triggers and instances; invocations in flight end as failures and their messages come back.
  void Shutdown();

  StatusOr<DeployResult> Deploy(DeployRequest request);
  StatusOr<std::vector<FunctionState>> List(std::string const& project);
  StatusOr<FunctionState> Get(std::string const& name);  // full name
  Status Delete(std::string const& name);
  // An ad hoc invocation: `data` is the event's message data (background functions) or the body (HTTP).
  StatusOr<CallResult> Call(std::string const& name, std::string const& data);
  // What the HTTP path needs of a deployed function, found by project and id, in `region` or (empty) any region.
  struct HttpTarget {
    std::string name;  // full name
    bool http = false;  // an HTTP function
    bool allow_unauthenticated = false;
  };
  StatusOr<HttpTarget> FindRunning(std::string const& project, std::string const& region, std::string const& id);
  // An HTTP request to an HTTP function (method, path below the function, headers, body), never retried.
  // NOT_FOUND for an unknown function, FAILED_PRECONDITION for one that is not running or not an HTTP function.
  StatusOr<CallResult> InvokeHttp(std::string const& name, Invocation request);
  // The same without blocking, when an instance can take the request at once: runs it on `io`'s event loop,
  // which calls `done`, and returns true. Returns false (and never calls `done`) otherwise: use InvokeHttp.
  bool TryInvokeHttpAsync(std::string const& name, Invocation request, boost::asio::io_context& io,
                          std::function<void(CallResult)> done);

  // Executions by function and status, their duration histogram, instances running and busy.
  std::string RenderMetrics();
  // Executions of `name` on this node since it started, by status ("ok", "error", "timeout", "crash", "oom").
  std::map<std::string, int64_t> ExecutionCounts(std::string const& name);

 private:
  // Refuses a bucket whose directory is outside the bucket roots; on success its path is the canonical one.
  Status CheckBucketPath(BucketRecord& bucket) const;
  struct Running {
    FunctionSpec spec;
    std::string error;  // why it is not running; empty when it is
    bool ready = true;  // false while it is being built and started
    std::string executable;  // what Build made: a cpp function's binary, a Python function's venv interpreter
  };
  struct Built {
    std::string executable;  // a cpp function's binary, a Python function's venv interpreter, or ""
    std::string log;         // a dependency install's output (pip), when one ran
  };
  struct Counters {
    std::array<int64_t, 5> by_status{};  // indexed by ExecutionStatus
    std::array<int64_t, 16> buckets{};   // per kDurationBuckets bound (not cumulative), +Inf last
    double duration_sum_seconds = 0;
  };

  StatusOr<Built> Build(FunctionSpec const& spec);
  Status Launch(FunctionSpec const& spec, std::string const& executable);
  std::vector<std::string> InUseExecutables();  // of the functions running here
  // Notes for the plan: each function whose Cloud Functions runtime asks for another version than is installed.
  static std::vector<std::string> VersionNotes(std::vector<FunctionSpec> const& functions);
  // A stored function started (Start, Follow): FAILED with the reason when it does not build or start.
  void BuildAndLaunch(std::string const& name, FunctionSpec const& spec);
  void Stop(std::string const& name);
  void OnExecution(ExecutionPhase phase, ExecutionRecord const& record);
  Status CheckHttpRunning(std::string const& name);
  static ExecutionRecord NewHttpRecord(std::string const& name);
  void OnInstanceLine(std::string const& function, InstanceLine line);
  std::string SentryDsnOf(FunctionSpec const& spec) const;  // the function's own, or the daemon's; "" for none
  StatusOr<std::vector<FunctionSpec>> Stored(std::string const& project);
  FunctionState StateOf(FunctionSpec spec);  // with how it runs now, on this node
  // In a cluster: adds the other live nodes' instances (their reports) to states of this node's.
  void AddOtherNodes(std::vector<FunctionState>& states);
  void ReportThisNode();
  // Cluster only: one of function `name`'s slots for one call, given back when the call ends. Waits for one as a
  // call waits for an instance: up to the function's timeout, or until the caller leaves. Returns the slot's name
  // ("" outside a cluster); RESOURCE_EXHAUSTED or CANCELLED when none came.
  StatusOr<std::string> TakeClusterSlot(std::string const& name,
                                        std::shared_ptr<std::atomic<bool>> const& client_gone);
  void GiveClusterSlot(std::string const& slot) {
    if (!slot.empty()) slots_->Give(slot);
  }

  Store& store_;
  Broker& broker_;
  ExecutionLog& log_;
  Clock& clock_;
  FunctionServiceOptions const options_;
  std::unique_ptr<ClusterSlots> const slots_;  // cluster only
  SentryReporter sentry_;
  Supervisor supervisor_;
  PubsubDispatcher dispatcher_;

  std::mutex deploy_mu_;  // one deploy (or delete) at a time
  std::string followed_schedules_, followed_buckets_;  // GUARDED_BY(deploy_mu_): what Follow saw last
  std::mutex mu_;
  std::map<std::string, Running> running_;    // GUARDED_BY(mu_), by full name
  std::map<std::string, Counters> counters_;  // GUARDED_BY(mu_), by full name
};

}  // namespace ferry
