#include "triggers/pubsub_trigger.h"

#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/time_util.h"

namespace ferry {

struct PubsubDispatcher::Trigger {
  PubsubTriggerSpec spec;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<ReceivedMessage> queue;  // GUARDED_BY(mu): leased, waiting for a worker
  int idle_workers = 0;               // GUARDED_BY(mu)
  bool stopping = false;              // GUARDED_BY(mu)
  std::thread puller;
  std::vector<std::thread> workers;

  void Shutdown() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (puller.joinable()) puller.join();
    for (auto& w : workers) w.join();
  }
};

std::string NewExecutionId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return buf;
}

PubsubDispatcher::PubsubDispatcher(Broker& broker, Supervisor& supervisor, Clock& clock, ExecutionSink sink)
    : broker_(broker), supervisor_(supervisor), clock_(clock), sink_(std::move(sink)) {}

PubsubDispatcher::~PubsubDispatcher() {
  std::map<std::string, std::unique_ptr<Trigger>> triggers;
  {
    std::lock_guard lock(mu_);
    triggers.swap(triggers_);
  }
  for (auto& [name, t] : triggers) t->Shutdown();
}

void PubsubDispatcher::Start(PubsubTriggerSpec spec) {
  Stop(spec.function);
  auto trigger = std::make_unique<Trigger>();
  trigger->spec = std::move(spec);
  Trigger* t = trigger.get();
  int workers = std::max(1, t->spec.capacity);
  t->idle_workers = workers;
  for (int i = 0; i < workers; ++i) t->workers.emplace_back([this, t] { WorkLoop(*t); });
  t->puller = std::thread([this, t] { PullLoop(*t); });
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
  trigger->Shutdown();
}

void PubsubDispatcher::PullLoop(Trigger& t) {
  while (true) {
    int free = 0;
    {
      std::unique_lock lock(t.mu);
      t.cv.wait(lock, [&] { return t.stopping || (t.queue.empty() && t.idle_workers > 0); });
      if (t.stopping) return;
      free = t.idle_workers;
    }
    // A long-poll: returns as soon as a message arrives, or empty after the broker's pull_wait.
    auto pulled = broker_.Pull(t.spec.subscription, free, false);
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
    t.cv.notify_all();
  }
}

void PubsubDispatcher::WorkLoop(Trigger& t) {
  while (true) {
    ReceivedMessage message;
    {
      std::unique_lock lock(t.mu);
      t.cv.wait(lock, [&] { return t.stopping || !t.queue.empty(); });
      if (t.queue.empty()) return;  // stopping, and nothing leased is left waiting
      message = std::move(t.queue.front());
      t.queue.pop_front();
      --t.idle_workers;
    }
    Deliver(t, message);
    {
      std::lock_guard lock(t.mu);
      ++t.idle_workers;
    }
    t.cv.notify_all();
  }
}

InvocationResult Execute(Supervisor& supervisor, Clock& clock, ExecutionSink const& sink, ExecutionRecord& record,
                         Invocation const& invocation) {
  record.start_ms = ToUnixMillis(clock.Now());
  if (sink) sink(ExecutionPhase::kStarted, record);
  auto started = std::chrono::steady_clock::now();
  InvocationResult result = supervisor.Invoke(record.function, invocation);
  record.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
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
  InvocationResult result = Execute(supervisor_, clock_, sink_, record,
                                    MakeInvocation(t.spec, message, record.execution_id));
  Status settled =
      result.status == ExecutionStatus::kOk || !t.spec.retry
          ? broker_.Acknowledge(t.spec.subscription, {message.ack_id})
          : broker_.Nack(t.spec.subscription, message.ack_id,
                         std::string(ExecutionStatusName(result.status)) + ": " + result.error);
  if (!settled.ok()) {
    // The lease will expire and the message come back: at-least-once still holds.
    std::fprintf(stderr, "ferry: cannot settle message %s of %s: %s\n", record.message_id.c_str(),
                 t.spec.subscription.c_str(), settled.message().c_str());
  }
}

Invocation PubsubDispatcher::MakeInvocation(PubsubTriggerSpec const& spec, ReceivedMessage const& received,
                                            std::string execution_id) {
  auto const& m = received.message;
  std::string publish_time = FormatRfc3339(m.publish_time_ms);
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
