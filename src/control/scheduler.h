#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "model/schedule_spec.h"
#include "store/store.h"

namespace ferry {

struct ScheduleState {
  ScheduleSpec spec;
  int64_t next_fire_ms = -1;
  int64_t last_fired_ms = 0;
  bool paused = false;
};

// Fires schedules: at each tick of a schedule's cron expression in its time zone, publishes its message to its
// topic (in the same store transaction that records the tick, so a tick fires once across restarts and nodes)
// or invokes its function (the tick is recorded first: at most once, then retried as the schedule says). A tick
// that fell while Ferry was down fires once on start when it is within the schedule's catch_up window.
class Scheduler {
 public:
  // Runs a function target: `function` is its full name. Returns whether the invocation succeeded.
  using Invoke = std::function<bool(std::string const& function, std::string const& data)>;

  Scheduler(Store& store, Clock& clock, Invoke invoke);
  // Where HTTP targets may go: checked when a job is created or changed and again before each request (ferry
  // serve passes its push policy, so a job reaches no more than a push subscription could). Unset: nowhere.
  void set_uri_check(std::function<Status(std::string const& uri)> check) { uri_check_ = std::move(check); }
  ~Scheduler();
  Scheduler(Scheduler const&) = delete;
  Scheduler& operator=(Scheduler const&) = delete;

  void Start();
  void Stop();
  // Looks at the schedules again now (after a deploy).
  void Wake();
  // Fires every due schedule once; returns the earliest next tick (-1: none). Start() calls it in a loop; tests
  // with a fake clock call it directly.
  int64_t RunDue();

  StatusOr<std::vector<ScheduleState>> List(std::string const& project);
  StatusOr<ScheduleState> Get(std::string const& name);  // full name
  // Fires now, outside the schedule: the ticks are not changed.
  Status RunNow(std::string const& name);
  // The Cloud Scheduler API's changes (gcloud scheduler), each one store transaction; `spec` is normalized and
  // marked created_by kCreatedByApi. ALREADY_EXISTS, NOT_FOUND, and FAILED_PRECONDITION for a schedule that a
  // deploy file manages (a deploy would undo the change).
  Status Create(ScheduleSpec spec);
  // An HTTP target's request, as Cloud Scheduler makes it: the job's method, headers and body, with
  // User-Agent Google-Cloud-Scheduler and X-CloudScheduler headers, within its attempt deadline (180 s). OK for a
  // 2xx answer.
  Status CallHttp(ScheduleSpec const& spec);
  Status Replace(ScheduleSpec spec);
  Status Delete(std::string const& name);
  Status Pause(std::string const& name);
  Status Resume(std::string const& name);

  // The first tick of `spec` after `after_ms`, or -1.
  static int64_t NextFire(ScheduleSpec const& spec, int64_t after_ms);

  // Prometheus text: the ticks of each schedule this node fired (in a cluster, one node fires each tick).
  std::string RenderMetrics();

 private:
  void Loop();
  void Fire(ScheduleSpec const& spec);  // runs the target, now
  void InvokeWithRetries(ScheduleSpec spec);

  Store& store_;
  Clock& clock_;
  Invoke invoke_;
  std::function<Status(std::string const& uri)> uri_check_;
  Status CheckUri(std::string const& uri) const;  // FAILED_PRECONDITION without a uri_check_
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool woken_ = false;     // GUARDED_BY(mu_)
  struct Invocation {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Invocation> invocations_;  // GUARDED_BY(mu_): function targets running or finished, not joined
  std::map<std::string, int64_t> fired_;  // GUARDED_BY(mu_): ticks this node fired, by schedule
  std::thread loop_;
};

}  // namespace ferry
