#include "triggers/pubsub_trigger.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/json_depth.h"
#include "common/latency_stages.h"
#include "common/time_util.h"

namespace ferry {

namespace {
// Most messages held ahead of the function.
constexpr int kMaxPrefetch = 1000;
// Acks are sent when this many are waiting or the oldest has waited this long.
constexpr std::size_t kAckBatch = 500;
constexpr auto kAckBatchWindow = std::chrono::milliseconds(10);
// Cluster only: a worker holding a slot keeps it this long after its delivery for the next message, then gives it
// back for other nodes and calls to use.
constexpr auto kSlotLinger = std::chrono::milliseconds(200);
// Cluster only: how long a node that found every slot held waits before asking again, first and at most.
constexpr auto kMinProbeWait = std::chrono::milliseconds(50);
constexpr auto kMaxProbeWait = std::chrono::milliseconds(250);
// Cluster only: a node leases ahead at most this much of the function's work, at its recent pace.
constexpr auto kClusterPrefetch = std::chrono::milliseconds(1000);
}  // namespace

struct PubsubDispatcher::Trigger {
  PubsubTriggerSpec spec;
  SlotPool* slots = nullptr;  // in a cluster: every delivery holds one of the cluster's slots
  int worker_count = 0;
  std::mutex mu;
  std::condition_variable cv;       // the puller waits here for room in the queue
  std::condition_variable work_cv;  // workers wait here for messages (in a cluster, the workers holding a slot)
  std::condition_variable slot_cv;  // cluster only: workers without a slot wait here for a free one
  std::deque<ReceivedMessage> queue;  // GUARDED_BY(mu): leased, waiting for a worker
  int idle_workers = 0;               // GUARDED_BY(mu)
  double avg_duration_ms = -1;        // GUARDED_BY(mu): moving average of invocations; -1 before the first
  std::vector<std::string> acks;      // GUARDED_BY(mu): waiting for AckLoop
  bool stopping = false;              // GUARDED_BY(mu)
  std::atomic<bool> pull_cancelled{false};  // ends the puller's long-poll at once (with Broker::WakePulls)
  // Cluster only: the slots this node holds for the function, free ones (waiting for a worker to take them) and
  // the ones workers hold (running a delivery, or waiting a moment for the next message).
  std::vector<std::string> free_slots;  // GUARDED_BY(mu)
  int held = 0;                         // GUARDED_BY(mu)
  // Cluster only: when every slot was held elsewhere, the puller asks again for one after this, waiting longer
  // each time up to kMaxProbeWait.
  std::chrono::steady_clock::time_point probe_after;  // GUARDED_BY(mu)
  std::chrono::milliseconds probe_wait = kMinProbeWait;  // GUARDED_BY(mu)
  std::condition_variable ack_cv;
  std::thread puller;
  std::thread acker;
  std::vector<std::thread> workers;

  int Running() const { return worker_count - idle_workers; }
  // How many deliveries may run here at once: the function's capacity, or in a cluster the slots held here.
  int Capacity() const { return slots ? held : spec.capacity; }

  // How many messages may wait leased in the queue: what the function finishes within a quarter of the ack
  // deadline at its recent pace (in a cluster, within kClusterPrefetch: what one node leases ahead, the others
  // cannot run), none until that pace is known.
  int PrefetchLimit() const {
    if (avg_duration_ms < 0) return 0;
    double budget_ms = spec.ack_deadline_seconds * 1000.0 / 4;
    if (slots) budget_ms = std::min<double>(budget_ms, kClusterPrefetch.count());
    double n = budget_ms / std::max(avg_duration_ms, 0.05) * Capacity();
    return static_cast<int>(std::min<double>(n, kMaxPrefetch));
  }

  // How many more messages the puller may lease: one for each delivery that could start now, plus the prefetch.
  // In a cluster, with `probe`, one more while this node could hold another slot: it learns there is work by
  // leasing a message, then takes a slot to run it (TakeSlots).
  int Room(bool probe) const {
    int prefetch = PrefetchLimit();
    if (slots && probe && held < worker_count) prefetch = std::max(prefetch, 1);
    int can_start = slots ? held - Running() : idle_workers;
    return can_start + prefetch - static_cast<int>(queue.size());
  }

  // Every slot is held elsewhere: ask again a little later, then less often. Called with mu held.
  void BackOff() {
    probe_after = std::chrono::steady_clock::now() + probe_wait;
    probe_wait = std::min(probe_wait * 2, kMaxProbeWait);
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    work_cv.notify_all();
    slot_cv.notify_all();
    ack_cv.notify_all();
    if (puller.joinable()) puller.join();
    for (auto& w : workers) w.join();
    if (acker.joinable()) acker.join();
    for (auto const& slot : free_slots) slots->Give(slot);
    free_slots.clear();
  }
};

std::string NewExecutionId() {
  // The count: the start millisecond shifted left by 8 bits, or one more than the last id's when that is larger
  // (more than 256 executions in a millisecond, or the wall clock stepped back), so it only grows in a process.
  static std::atomic<uint64_t> last{0};
  static uint32_t const salt = std::random_device{}() & 0xfffffffU;  // 28 bits: tells processes apart
  auto now_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  uint64_t prev = last.load(std::memory_order_relaxed);
  uint64_t next = 0;
  do {
    next = std::max(prev + 1, now_ms << 8);
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  char buf[24];
  std::snprintf(buf, sizeof buf, "%013llx%07x", static_cast<unsigned long long>(next & ((1ULL << 52) - 1)), salt);
  return buf;
}

PubsubDispatcher::PubsubDispatcher(Broker& broker, Supervisor& supervisor, Clock& clock, ExecutionSink sink,
                                   SlotPool* slots)
    : broker_(broker), supervisor_(supervisor), clock_(clock), sink_(std::move(sink)), slots_(slots) {}

PubsubDispatcher::~PubsubDispatcher() {
  std::map<std::string, std::unique_ptr<Trigger>> triggers;
  {
    std::lock_guard lock(mu_);
    triggers.swap(triggers_);
  }
  for (auto& [name, t] : triggers) t->pull_cancelled = true;
  broker_.WakePulls();
  for (auto& [name, t] : triggers) t->Shutdown();
}

void PubsubDispatcher::Start(PubsubTriggerSpec spec) {
  Stop(spec.function);
  auto trigger = std::make_unique<Trigger>();
  trigger->spec = std::move(spec);
  trigger->slots = slots_;
  Trigger* t = trigger.get();
  // A worker per delivery in flight, up to kMaxWorkersPerTrigger: max_instances x concurrency may be a million,
  // and a thread per slot would be that many threads. Past the cap, deliveries wait their turn in the broker.
  int workers = std::clamp(t->spec.capacity, 1, kMaxWorkersPerTrigger);
  t->worker_count = workers;
  t->idle_workers = workers;
  for (int i = 0; i < workers; ++i) t->workers.emplace_back([this, t] { WorkLoop(*t); });
  t->puller = std::thread([this, t] { PullLoop(*t); });
  t->acker = std::thread([this, t] { AckLoop(*t); });
  std::lock_guard lock(mu_);
  triggers_[t->spec.function] = std::move(trigger);
}

void PubsubDispatcher::Stop(std::string const& function) {
  std::unique_ptr<Trigger> trigger;
  {
    std::lock_guard lock(mu_);
    auto it = triggers_.find(function);
    if (it == triggers_.end()) return;
    trigger = std::move(it->second);
    triggers_.erase(it);
  }
  // The puller may be in a long-poll: end it now rather than after pull_wait (a redeploy waits for it).
  trigger->pull_cancelled = true;
  broker_.WakePulls();
  trigger->Shutdown();
}

void PubsubDispatcher::PullLoop(Trigger& t) {
  pthread_setname_np(pthread_self(), "ferry-fn-pull");
  while (true) {
    int want = 0;
    bool probing = false;
    {
      std::unique_lock lock(t.mu);
      // Refill when the queue is down to half the prefetch, so leases are taken in batches rather than one by
      // one as workers finish (each lease is a store commit).
      auto low = [&] { return static_cast<int>(t.queue.size()) <= t.PrefetchLimit() / 2; };
      while (!t.stopping) {
        bool probe = std::chrono::steady_clock::now() >= t.probe_after;
        want = t.Room(probe);
        probing = want > t.Room(false);
        if (want > 0 && low()) break;
        if (!probe && t.Room(true) > 0 && low()) {
          t.cv.wait_until(lock, t.probe_after);
        } else {
          t.cv.wait(lock);
        }
      }
      if (t.stopping) break;
      want = std::min(want, kMaxPullMessages);
    }
    // A probe (a message leased to learn there is work, before holding a slot for it) while every slot is held
    // elsewhere would only be handed back: a read tells first.
    if (probing && !t.slots->AnyFree(t.spec.function, t.spec.capacity)) {
      std::lock_guard lock(t.mu);
      t.BackOff();
      continue;
    }
    // A long-poll: returns as soon as a message arrives, or empty after the broker's pull_wait.
    auto pulled = broker_.Pull(t.spec.subscription, {.max_messages = want,
                                                     .wait = broker_.pull_wait(),
                                                     .cancelled = &t.pull_cancelled});
    if (!pulled.ok()) {
      std::fprintf(stderr, "ferry: trigger of %s cannot pull %s: %s\n", t.spec.function.c_str(),
                   t.spec.subscription.c_str(), pulled.status().message().c_str());
      std::unique_lock lock(t.mu);
      t.cv.wait_for(lock, std::chrono::seconds(1), [&] { return t.stopping; });
      continue;
    }
    if (pulled->empty()) continue;
    {
      std::lock_guard lock(t.mu);
      for (auto& m : *pulled) t.queue.push_back(std::move(m));
    }
    if (t.slots) TakeSlots(t);
    if (pulled->size() == 1) {
      t.work_cv.notify_one();
    } else {
      t.work_cv.notify_all();
    }
  }
  // Stopping: hand back what no worker took, so it is delivered again at once rather than after its lease.
  std::vector<std::string> unstarted;
  {
    std::lock_guard lock(t.mu);
    for (auto& m : t.queue) unstarted.push_back(m.ack_id);
    t.queue.clear();
  }
  if (!unstarted.empty()) (void)broker_.ReturnUnsent(t.spec.subscription, unstarted);
}

void PubsubDispatcher::TakeSlots(Trigger& t) {
  auto const now = std::chrono::steady_clock::now();
  bool every_slot_held = false;
  while (true) {
    {
      std::lock_guard lock(t.mu);
      int without_slot = static_cast<int>(t.queue.size()) - (t.held - t.Running());
      if (without_slot <= 0 || t.held >= t.worker_count || now < t.probe_after) break;
    }
    std::string slot = t.slots->TryTake(t.spec.function, t.spec.capacity);
    if (slot.empty()) {
      every_slot_held = true;
      break;
    }
    {
      std::lock_guard lock(t.mu);
      t.free_slots.push_back(std::move(slot));
      ++t.held;
    }
    t.slot_cv.notify_one();
  }
  std::vector<std::string> unsent;
  {
    std::lock_guard lock(t.mu);
    if (every_slot_held) {
      t.BackOff();
    } else if (now >= t.probe_after) {
      t.probe_wait = kMinProbeWait;
    }
    // Messages beyond what the slots held here run and prefetch go back at once, for the nodes that hold the
    // other slots.
    int excess = static_cast<int>(t.queue.size()) - (t.held - t.Running()) - t.PrefetchLimit();
    for (; excess > 0; --excess) {
      unsent.push_back(std::move(t.queue.back().ack_id));
      t.queue.pop_back();
    }
  }
  if (!unsent.empty()) (void)broker_.ReturnUnsent(t.spec.subscription, unsent);
}

// A worker takes the next message when it can run it: at once on a node alone. In a cluster, a worker without a
// slot waits for a free one and takes it; a worker with a slot waits for a message, and gives the slot back when
// none comes for kSlotLinger.
bool PubsubDispatcher::NextMessage(Trigger& t, std::string& slot, ReceivedMessage& message) {
  std::unique_lock lock(t.mu);
  while (t.slots) {
    if (slot.empty()) {
      t.slot_cv.wait(lock, [&] { return t.stopping || !t.free_slots.empty(); });
      if (t.stopping) return false;
      slot = std::move(t.free_slots.back());
      t.free_slots.pop_back();
    }
    if (t.work_cv.wait_for(lock, kSlotLinger, [&] { return t.stopping || !t.queue.empty(); })) break;
    // No message came for a while: the slot goes back, for other nodes and calls to use.
    --t.held;
    lock.unlock();
    t.slots->Give(slot);
    slot.clear();
    t.cv.notify_one();  // the puller's room changed
    lock.lock();
  }
  t.work_cv.wait(lock, [&] { return t.stopping || !t.queue.empty(); });  // at once in a cluster
  if (t.stopping) return false;
  message = std::move(t.queue.front());
  t.queue.pop_front();
  --t.idle_workers;
  return true;
}

void PubsubDispatcher::WorkLoop(Trigger& t) {
  pthread_setname_np(pthread_self(), "ferry-fn-work");
  std::string slot;  // in a cluster: the slot this worker holds, if any
  ReceivedMessage message;
  while (NextMessage(t, slot, message)) {
    if (t.slots && !t.slots->Holds(slot)) {
      // Lost (this node went unheard too long, and another took it): the message goes back undelivered.
      (void)broker_.ReturnUnsent(t.spec.subscription, {message.ack_id});
      {
        std::lock_guard lock(t.mu);
        ++t.idle_workers;
        --t.held;
      }
      slot.clear();
      t.cv.notify_one();
      continue;
    }
    auto started = std::chrono::steady_clock::now();
    try {
      Deliver(t, message);
    } catch (std::exception const& e) {  // one message must not end the worker: it goes back, to be retried
      std::fprintf(stderr, "ferry: %s: delivery failed: %s\n", t.spec.function.c_str(), e.what());
      (void)broker_.Nack(t.spec.subscription, message.ack_id, std::string("internal error: ") + e.what());
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    {
      std::lock_guard lock(t.mu);
      ++t.idle_workers;
      t.avg_duration_ms = t.avg_duration_ms < 0 ? ms : 0.9 * t.avg_duration_ms + 0.1 * ms;
    }
    t.cv.notify_one();  // room for the puller
  }
  if (!slot.empty()) t.slots->Give(slot);
}

void PubsubDispatcher::AckLoop(Trigger& t) {
  pthread_setname_np(pthread_self(), "ferry-fn-ack");
  while (true) {
    std::vector<std::string> batch;
    {
      std::unique_lock lock(t.mu);
      t.ack_cv.wait(lock, [&] { return t.stopping || !t.acks.empty(); });
      if (t.acks.empty()) return;  // stopping, and every ack sent
      // Let a batch gather: an ack is a durable store commit, and no one waits for it.
      t.ack_cv.wait_for(lock, kAckBatchWindow, [&] { return t.stopping || t.acks.size() >= kAckBatch; });
      batch.swap(t.acks);
    }
    // One store commit for every ack that arrived while the last one was being written.
    for (std::size_t first = 0; first < batch.size(); first += kMaxPullMessages) {
      std::vector<std::string> part(batch.begin() + static_cast<std::ptrdiff_t>(first),
                                    batch.begin() + static_cast<std::ptrdiff_t>(
                                                        std::min(batch.size(), first + kMaxPullMessages)));
      Status acked = broker_.Acknowledge(t.spec.subscription, part);
      if (!acked.ok()) {
        // The leases will expire and the messages come back: at-least-once still holds.
        std::fprintf(stderr, "ferry: cannot ack %zu messages of %s: %s\n", part.size(),
                     t.spec.subscription.c_str(), acked.message().c_str());
      }
    }
  }
}

InvocationResult Execute(Supervisor& supervisor, Clock& clock, ExecutionSink const& sink, ExecutionRecord& record,
                         Invocation invocation) {
  std::optional<SteadyPoint> started;
  auto start = [&] {
    record.start_ms = ToUnixMillis(clock.Now());
    if (sink) sink(ExecutionPhase::kStarted, record);
    started = clock.SteadyNow();
  };
  invocation.on_start = start;  // on this thread, before the request goes out
  InvocationResult result = supervisor.Invoke(record.function, invocation);
  if (!started) start();  // it never reached an instance (429, removed): recorded as it ended
  record.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock.SteadyNow() - *started).count();
  record.status = result.status;
  record.error = result.error;
  if (sink) sink(ExecutionPhase::kFinished, record);
  return result;
}

void PubsubDispatcher::Deliver(Trigger& t, ReceivedMessage const& message) {
  ExecutionRecord record;
  record.execution_id = NewExecutionId();
  record.function = t.spec.function;
  record.trigger = "pubsub";
  record.message_id = message.message.message_id;
  record.attempt = message.attempt;
  Invocation invocation = MakeInvocation(t.spec, message, record.execution_id);
  if (message.attempt == 1) latency::RecordDelivered(record.message_id, Stage::kTriggerTotal);
  InvocationResult result = Execute(supervisor_, clock_, sink_, record, std::move(invocation));
  if (result.status == ExecutionStatus::kOk || !t.spec.retry) {
    {
      std::lock_guard lock(t.mu);
      t.acks.push_back(message.ack_id);
      if (t.acks.size() != 1 && t.acks.size() != kAckBatch) return;  // the acker is awake or not due yet
    }
    t.ack_cv.notify_one();
    return;
  }
  Status nacked = broker_.Nack(t.spec.subscription, message.ack_id,
                               std::string(ExecutionStatusName(result.status)) + ": " + result.error);
  if (!nacked.ok()) {
    // The lease will expire and the message come back: at-least-once still holds.
    std::fprintf(stderr, "ferry: cannot nack message %s of %s: %s\n", record.message_id.c_str(),
                 t.spec.subscription.c_str(), nacked.message().c_str());
  }
}

// A bucket event as Cloud Functions delivers it: the object resource as data, the event type and object as context
// (legacy), or a binary CloudEvent of type google.cloud.storage.object.v1.* (2nd gen).
Invocation PubsubDispatcher::MakeStorageInvocation(PubsubTriggerSpec const& spec, ReceivedMessage const& received,
                                                   std::string execution_id) {
  auto const& m = received.message;
  auto attribute = [&](char const* key) {
    auto it = m.attributes.find(key);
    return it == m.attributes.end() ? std::string() : it->second;
  };
  std::string event_type = attribute("eventType");
  std::string object = attribute("objectId");
  std::string time = attribute("eventTime");
  if (time.empty()) time = FormatRfc3339(m.publish_time_ms);
  Invocation inv;
  inv.execution_id = std::move(execution_id);
  if (spec.signature == "cloudevent") {
    static std::map<std::string, std::string> const kTypes = {
        {"google.storage.object.finalize", "google.cloud.storage.object.v1.finalized"},
        {"google.storage.object.delete", "google.cloud.storage.object.v1.deleted"},
        {"google.storage.object.archive", "google.cloud.storage.object.v1.archived"},
        {"google.storage.object.metadataUpdate", "google.cloud.storage.object.v1.metadataUpdated"}};
    auto type = kTypes.find(event_type);
    inv.headers = {{"ce-id", m.message_id},
                   {"ce-specversion", "1.0"},
                   {"ce-type", type == kTypes.end() ? event_type : type->second},
                   {"ce-source", "//storage.googleapis.com/projects/_/buckets/" + spec.storage_bucket},
                   {"ce-subject", "objects/" + object},
                   {"ce-time", time},
                   {"content-type", "application/json"}};
    inv.body = m.data;
    return inv;
  }
  // A storage event's data is Ferry's own object resource, but anyone who may publish could put something else
  // on the topic: too deep a document is treated as no document.
  nlohmann::json data =
      JsonNestingWithin(m.data) ? nlohmann::json::parse(m.data, nullptr, false) : nlohmann::json::object();
  if (data.is_discarded()) data = nlohmann::json::object();
  nlohmann::json body{{"context",
                       {{"eventId", m.message_id},
                        {"timestamp", time},
                        {"eventType", event_type},
                        {"resource",
                         {{"service", "storage.googleapis.com"},
                          {"name", "projects/_/buckets/" + spec.storage_bucket + "/objects/" + object},
                          {"type", "storage#object"}}}}},
                      {"data", data}};
  inv.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return inv;
}

Invocation PubsubDispatcher::MakeInvocation(PubsubTriggerSpec const& spec, ReceivedMessage const& received,
                                            std::string execution_id) {
  auto const& m = received.message;
  std::string publish_time = FormatRfc3339(m.publish_time_ms);
  if (!spec.storage_bucket.empty()) return MakeStorageInvocation(spec, received, std::move(execution_id));
  nlohmann::json message{{"data", Base64Encode(m.data)},
                         {"attributes", m.attributes},
                         {"messageId", m.message_id},
                         {"publishTime", publish_time}};
  if (!m.ordering_key.empty()) message["orderingKey"] = m.ordering_key;

  Invocation inv;
  inv.execution_id = std::move(execution_id);
  if (spec.signature == "cloudevent") {
    // Binary mode, as Eventarc delivers Pub/Sub to Cloud Functions (2nd gen).
    inv.headers = {{"ce-id", m.message_id},
                   {"ce-specversion", "1.0"},
                   {"ce-type", "google.cloud.pubsub.topic.v1.messagePublished"},
                   {"ce-source", "//pubsub.googleapis.com/" + spec.topic},
                   {"ce-time", publish_time}};
    nlohmann::json body{{"message", message}, {"subscription", spec.subscription},
                        {"deliveryAttempt", received.attempt}};
    inv.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return inv;
  }
  // The legacy background-event body of Cloud Functions (1st gen), which Google's Functions Frameworks turn
  // into (event, context). Ferry adds deliveryAttempt to the event, which Google's lacks.
  message["@type"] = "type.googleapis.com/google.pubsub.v1.PubsubMessage";
  message["deliveryAttempt"] = received.attempt;
  nlohmann::json body{
      {"context",
       {{"eventId", m.message_id},
        {"timestamp", publish_time},
        {"eventType", "google.pubsub.topic.publish"},
        {"resource",
         {{"service", "pubsub.googleapis.com"},
          {"name", spec.topic},
          {"type", "type.googleapis.com/google.pubsub.v1.PubsubMessage"}}}}},
      {"data", message}};
  inv.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return inv;
}

}  // namespace ferry
