#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "functions/supervisor.h"

namespace ferry {

// The most deliveries one trigger has in flight on a node (a thread each), whatever max_instances x concurrency
// allows: enough for any function a 2-core node can run, and a bound on its threads.
inline constexpr int kMaxWorkersPerTrigger = 64;

// A limit that several nodes share (a cluster's max_instances x concurrency): each execution holds one of its
// slots, on whichever node it runs. Thread-safe.
class SlotPool {
 public:
  virtual ~SlotPool() = default;
  // One of `function`'s `count` slots, or "" when every one is held (or the pool cannot be reached).
  virtual std::string TryTake(std::string const& function, int count) = 0;
  // Whether some of `function`'s `count` slots are free now (true when the pool cannot tell).
  virtual bool AnyFree(std::string const& function, int count) = 0;
  // Gives back a slot taken here.
  virtual void Give(std::string const& slot) = 0;
  // Whether this node still holds `slot`: false once it was lost (unrenewed for too long, and taken elsewhere).
  virtual bool Holds(std::string const& slot) = 0;
};

// One function's Pub/Sub trigger: the subscription it consumes and how.
struct PubsubTriggerSpec {
  std::string function;
  std::string subscription;          // full name; created beforehand with the function's retry and DLQ settings
  std::string topic;                 // full name, for the event's resource
  std::string signature = "event";   // "event": legacy background body; "cloudevent": binary-mode CloudEvent
  bool retry = false;                // event_trigger_retry: a failure nacks (true) or is logged and acked
  int capacity = 1;                  // max_instances x concurrency: in flight at most (kMaxWorkersPerTrigger)
  int ack_deadline_seconds = 600;    // the subscription's: how long a pulled message stays leased
  // Set for storage triggers: the messages are the bucket's events (storage/bucket_service.h), delivered as
  // Cloud Storage events instead of Pub/Sub ones.
  std::string storage_bucket;
};

// What Ferry records of every execution.
struct ExecutionRecord {
  std::string execution_id;
  std::string function;
  std::string trigger;     // "pubsub"
  std::string message_id;
  int attempt = 0;
  ExecutionStatus status = ExecutionStatus::kOk;
  int64_t start_ms = 0;
  int64_t duration_ms = 0;
  std::string error;
};
enum class ExecutionPhase { kStarted, kFinished };
// Told of every execution twice: when it starts (status and duration not yet set) and when it has finished.
using ExecutionSink = std::function<void(ExecutionPhase, ExecutionRecord const&)>;

// Runs one invocation as a recorded execution: sets the record's start, duration, status and error, and tells
// the sink before and after. The execution starts when an instance takes the call (as Cloud Functions counts
// it): time spent waiting for a busy instance or for one to start is not its duration.
InvocationResult Execute(Supervisor& supervisor, Clock& clock, ExecutionSink const& sink, ExecutionRecord& record,
                         Invocation invocation);

// Delivers each trigger's messages to its function: invokes through the Supervisor, acks a success, and on a
// failure nacks (retry on: the subscription's backoff and dead-letter policy apply) or acks (retry off).
// It pulls ahead of the function only as far as the function will get through within a quarter of the ack
// deadline (measured from its recent durations), so a prefetched message is not redelivered while it waits;
// slow functions get no prefetch. Acks go to the broker in batches from one thread. Thread-safe.
class PubsubDispatcher {
 public:
  // With `slots` (a cluster), each delivery holds one of the cluster's slots of its function, so the function's
  // max_instances x concurrency holds across the nodes; the pool outlives the dispatcher.
  PubsubDispatcher(Broker& broker, Supervisor& supervisor, Clock& clock, ExecutionSink sink,
                   SlotPool* slots = nullptr);
  ~PubsubDispatcher();

  // Starts (or restarts with new settings) delivering to a function.
  void Start(PubsubTriggerSpec spec);
  // Stops delivering; invocations in flight finish, messages not yet delivered stay on the subscription.
  void Stop(std::string const& function);

  // The legacy background-event body and the CloudEvent headers and body for a message, as the Functions
  // Framework expects them. Public for tests.
  static Invocation MakeInvocation(PubsubTriggerSpec const& spec, ReceivedMessage const& message,
                                   std::string execution_id);
  static Invocation MakeStorageInvocation(PubsubTriggerSpec const& spec, ReceivedMessage const& message,
                                          std::string execution_id);

 private:
  struct Trigger;
  void PullLoop(Trigger& trigger);
  void WorkLoop(Trigger& trigger);
  // Cluster only, after a pull: takes slots for the leased messages no slot held here can run, and hands back the
  // messages beyond those and the prefetch.
  void TakeSlots(Trigger& trigger);
  // Waits for the next message this worker can run (taking or giving back a slot in a cluster); false: stopping.
  bool NextMessage(Trigger& trigger, std::string& slot, ReceivedMessage& message);
  void AckLoop(Trigger& trigger);
  void Deliver(Trigger& trigger, ReceivedMessage const& message);

  Broker& broker_;
  Supervisor& supervisor_;
  Clock& clock_;
  ExecutionSink sink_;
  SlotPool* const slots_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Trigger>> triggers_;  // GUARDED_BY(mu_)
};

// A fresh execution id: 20 hex digits that sort in the order this process made them (13 of a count that follows
// the wall clock in milliseconds, then 7 random ones fixed per process, so ids of several processes sharing a
// PostgreSQL store do not collide). Ordered, not random, because the id is the executions table's key: random keys
// put each of a batch's rows on a different page of its index, and the log writer's CPU doubled (see
// docs/performance.md, "HTTP functions").
std::string NewExecutionId();

}  // namespace ferry
