#include "control/scheduler.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "common/prometheus.h"
#include "common/time_util.h"
#include "common/status_macros.h"
#include "model/json_codec.h"
#include "schedule/cron.h"

namespace ferry {
namespace {

// However short a schedule's catch-up window, a tick this late is still on time: the loop's own delay.
constexpr int64_t kOnTimeMillis = 60'000;

StatusOr<ScheduleState> Decode(ScheduleRecord const& r) {
  auto json = nlohmann::json::parse(r.spec, nullptr, false);
  FERRY_ASSIGN_OR_RETURN(auto spec, ScheduleSpecFromJson(json));
  return ScheduleState{std::move(spec), r.next_fire_ms, r.last_fired_ms, r.paused};
}

}  // namespace

Scheduler::Scheduler(Store& store, Clock& clock, Invoke invoke)
    : store_(store), clock_(clock), invoke_(std::move(invoke)) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  std::vector<Invocation> running;
  {
    std::lock_guard lock(mu_);
    running.swap(invocations_);
  }
  for (auto& i : running) i.thread.join();
}

void Scheduler::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

int64_t Scheduler::NextFire(ScheduleSpec const& spec, int64_t after_ms) {
  auto cron = CronSchedule::Parse(spec.schedule);
  auto zone = TimeZone::Load(spec.time_zone);
  if (!cron.ok() || !zone.ok()) return -1;
  return cron->NextAfter(after_ms, *zone);
}

int64_t Scheduler::RunDue() {
  int64_t const now = ToUnixMillis(clock_.Now());
  int64_t earliest = -1;
  auto consider = [&](int64_t next) {
    if (next >= 0 && (earliest < 0 || next < earliest)) earliest = next;
  };
  auto records = store_.ListSchedules();
  if (!records.ok()) {
    std::fprintf(stderr, "ferry: scheduler: %s\n", records.status().message().c_str());
    return earliest;
  }
  for (auto const& record : *records) {
    if (record.paused) continue;
    if (record.next_fire_ms < 0 || record.next_fire_ms > now) {
      consider(record.next_fire_ms);
      continue;
    }
    auto state = Decode(record);
    if (!state.ok()) continue;
    auto const& spec = state->spec;
    auto cron = CronSchedule::Parse(spec.schedule);
    auto zone = TimeZone::Load(spec.time_zone);
    if (!cron.ok() || !zone.ok()) continue;
    // The latest tick due: after a stop only it may fire, and only when recent enough.
    int64_t tick = record.next_fire_ms;
    for (int64_t n = cron->NextAfter(tick, *zone); n >= 0 && n <= now; n = cron->NextAfter(tick, *zone)) tick = n;
    int64_t next = cron->NextAfter(now, *zone);
    consider(next);
    if (now - tick > std::max(spec.catch_up_ms, kOnTimeMillis)) {
      std::fprintf(stderr, "ferry: schedule %s: tick %lld is older than its catch-up window; skipped\n",
                   record.name.c_str(), static_cast<long long>(tick));
      (void)store_.SetSchedulePaused(record.name, false, next);
      continue;
    }
    PubsubMessage message{.data = spec.data, .attributes = spec.attributes};
    bool const to_topic = !spec.topic.empty();
    auto fired = store_.FireSchedule(record.name, tick, next, spec.topic, to_topic ? &message : nullptr, now);
    if (!fired.ok()) {
      std::fprintf(stderr, "ferry: schedule %s: %s\n", record.name.c_str(), fired.status().message().c_str());
      // A missing topic: move on to the next tick rather than retry this one forever.
      (void)store_.SetSchedulePaused(record.name, false, next);
      continue;
    }
    if (!*fired) {
      // Fired already (by another node, or the clock stepped back): look forward from now, never spin on it.
      (void)store_.SetSchedulePaused(record.name, false, next);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++fired_[record.name];
    }
    if (!to_topic) InvokeWithRetries(spec);
  }
  return earliest;
}

std::string Scheduler::RenderMetrics() {
  auto records = store_.ListSchedules();  // every schedule, 0 until this node fires it: rates see them all
  std::lock_guard lock(mu_);
  std::map<std::string, int64_t> fired = fired_;
  if (records.ok()) {
    for (auto const& r : *records) fired.try_emplace(r.name, 0);
  }
  if (fired.empty()) return "";
  PrometheusWriter w;
  w.Family("ferry_schedule_ticks_fired_total", "counter", "Ticks of each schedule that this node fired.");
  for (auto const& [name, n] : fired) {
    w.Sample("ferry_schedule_ticks_fired_total", {{"schedule", name}}, static_cast<double>(n));
  }
  return w.Take();
}

void Scheduler::InvokeWithRetries(ScheduleSpec spec) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  // Join the ones that finished.
  for (auto it = invocations_.begin(); it != invocations_.end();) {
    if (!*it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    it = invocations_.erase(it);
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([this, done, spec = std::move(spec)] {
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag = true; }
    } mark{*done};
    std::string function = "projects/" + spec.project + "/locations/" + spec.region + "/functions/" + spec.function;
    int64_t backoff = spec.min_backoff_ms;
    for (int attempt = 0; attempt <= spec.retry_count; ++attempt) {
      bool ok = false;
      if (!spec.uri.empty()) {
        Status called = CallHttp(spec);
        ok = called.ok();
        if (!ok) {
          std::fprintf(stderr, "ferry: schedule %s: %s\n", ScheduleResourceName(spec).c_str(),
                       called.message().c_str());
        }
      } else {
        ok = invoke_(function, spec.data);
      }
      if (ok) return;
      // The backoff counts from the failure, not from when this thread next gets the lock.
      auto retry_at = clock_.SteadyNow() + std::chrono::milliseconds(backoff);
      std::unique_lock wait(mu_);
      if (clock_.WaitUntil(cv_, wait, retry_at, [&] { return stopping_; })) return;
      backoff *= 2;
    }
  });
  invocations_.push_back({std::move(thread), std::move(done)});
}

Status Scheduler::CheckUri(std::string const& uri) const {
  if (!uri_check_) return FailedPreconditionError("HTTP targets are not enabled on this Ferry");
  return uri_check_(uri);
}

Status Scheduler::CallHttp(ScheduleSpec const& spec) {
  // The check again at each request: a name may resolve to another address than when the job was made.
  FERRY_RETURN_IF_ERROR(CheckUri(spec.uri));
  auto scheme_end = spec.uri.find("://");
  auto path_start = spec.uri.find('/', scheme_end + 3);
  std::string endpoint = spec.uri.substr(0, path_start);
  std::string target = path_start == std::string::npos ? "/" : spec.uri.substr(path_start);
  std::string content_type = "application/octet-stream";
  HttpHeaders headers;
  for (auto const& [k, v] : spec.http_headers) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "content-type") {
      content_type = v;
    } else if (lower != "user-agent" && lower.rfind("x-cloudscheduler", 0) != 0 && lower != "host" &&
               lower != "content-length") {
      headers.emplace_back(k, v);
    }
  }
  headers.emplace_back("User-Agent", "Google-Cloud-Scheduler");
  headers.emplace_back("X-CloudScheduler", "true");
  headers.emplace_back("X-CloudScheduler-JobName", spec.name);
  headers.emplace_back("X-CloudScheduler-ScheduleTime", FormatRfc3339(ToUnixMillis(clock_.Now())));
  std::string method = spec.http_method.empty() ? "POST" : spec.http_method;
  FERRY_ASSIGN_OR_RETURN(auto result, SendOnce(endpoint, method, target, spec.data, content_type, headers,
                                               std::chrono::seconds(180)));
  if (result.status < 200 || result.status > 299) {
    return Status(StatusCode::kUnavailable, spec.uri + " answered HTTP " + std::to_string(result.status));
  }
  return OkStatus();
}

void Scheduler::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    int64_t earliest = RunDue();
    // Sleep until the earliest tick, looking again at least every second (deploys and other nodes change them).
    int64_t now = ToUnixMillis(clock_.Now());
    int64_t wake = earliest >= 0 ? std::min(now + 1000, earliest) : now + 1000;
    lock.lock();
    // Finished invocations leave their threads to be joined.
    clock_.WaitFor(cv_, lock, std::chrono::milliseconds(std::max<int64_t>(wake - now, 0)),
                   [&] { return stopping_ || woken_; });
    woken_ = false;
  }
}

StatusOr<std::vector<ScheduleState>> Scheduler::List(std::string const& project) {
  FERRY_ASSIGN_OR_RETURN(auto records, store_.ListSchedules());
  std::vector<ScheduleState> out;
  std::string prefix = "projects/" + project + "/";
  for (auto const& r : records) {
    if (r.name.rfind(prefix, 0) != 0) continue;
    FERRY_ASSIGN_OR_RETURN(auto state, Decode(r));
    out.push_back(std::move(state));
  }
  return out;
}

StatusOr<ScheduleState> Scheduler::Get(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto records, store_.ListSchedules());
  for (auto const& r : records) {
    if (r.name == name) return Decode(r);
  }
  return NotFoundError("Schedule " + name + " does not exist");
}

Status Scheduler::Create(ScheduleSpec spec) {
  spec.created_by = kCreatedByApi;
  if (!spec.uri.empty()) FERRY_RETURN_IF_ERROR(CheckUri(spec.uri));
  std::string name = ScheduleResourceName(spec);
  if (Get(name).ok()) return Status(StatusCode::kAlreadyExists, "Job " + name + " already exists");
  Deployment change;
  change.put_schedules.push_back({name, SafeDump(ScheduleSpecToJson(spec)), NextFire(spec, ToUnixMillis(clock_.Now()))});
  FERRY_RETURN_IF_ERROR(store_.ApplyDeployment(change));
  Wake();
  return OkStatus();
}

Status Scheduler::Replace(ScheduleSpec spec) {
  spec.created_by = kCreatedByApi;
  if (!spec.uri.empty()) FERRY_RETURN_IF_ERROR(CheckUri(spec.uri));
  std::string name = ScheduleResourceName(spec);
  FERRY_ASSIGN_OR_RETURN(auto old, Get(name));
  if (old.spec.created_by != kCreatedByApi) {
    return FailedPreconditionError("Job " + name + " is declared in a deploy file: change it there and run ferry deploy");
  }
  Deployment change;
  change.put_schedules.push_back({name, SafeDump(ScheduleSpecToJson(spec)), NextFire(spec, ToUnixMillis(clock_.Now()))});
  FERRY_RETURN_IF_ERROR(store_.ApplyDeployment(change));
  Wake();
  return OkStatus();
}

Status Scheduler::Delete(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto old, Get(name));
  if (old.spec.created_by != kCreatedByApi) {
    return FailedPreconditionError("Job " + name +
                                   " is declared in a deploy file: remove it there and run ferry deploy");
  }
  Deployment change;
  change.delete_schedules.push_back(name);
  FERRY_RETURN_IF_ERROR(store_.ApplyDeployment(change));
  Wake();
  return OkStatus();
}

Status Scheduler::RunNow(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto state, Get(name));
  auto const& spec = state.spec;
  if (!spec.topic.empty()) {
    // The tick record is not touched: a manual run is not a tick.
    PubsubMessage message{.data = spec.data, .attributes = spec.attributes};
    FERRY_ASSIGN_OR_RETURN(auto ids, store_.Publish(spec.topic, {message}, ToUnixMillis(clock_.Now())));
    (void)ids;
    return OkStatus();
  }
  InvokeWithRetries(spec);
  return OkStatus();
}

Status Scheduler::Pause(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto state, Get(name));
  return store_.SetSchedulePaused(name, true, state.next_fire_ms);
}

Status Scheduler::Resume(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto state, Get(name));
  // Ticks that fell while paused are not made up.
  FERRY_RETURN_IF_ERROR(store_.SetSchedulePaused(name, false, NextFire(state.spec, ToUnixMillis(clock_.Now()))));
  Wake();
  return OkStatus();
}

}  // namespace ferry
