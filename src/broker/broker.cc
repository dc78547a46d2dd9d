#include "broker/broker.h"

#include <algorithm>
#include <cstdio>

#include "common/status_macros.h"
#include "model/json_codec.h"
#include "store/ack_id.h"

namespace ferry {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return std::min(page_size, kMaxPageSize);
}

// The store was asked for limit + 1 items: the extra one says there is a next page, whose token is the last
// name shown (the store lists names after it).
template <typename T, typename NameOf>
Paged<T> MakePage(std::vector<T> items, int limit, NameOf name_of) {
  Paged<T> page;
  if (static_cast<int>(items.size()) > limit) {
    items.resize(static_cast<std::size_t>(limit));
    page.next_page_token = name_of(items.back());
  }
  page.items = std::move(items);
  return page;
}

Status CheckName(std::string const& name, ResourceKind kind) {
  auto parsed = ParseResourceName(name, kind);
  return parsed.ok() ? OkStatus() : parsed.status();
}

Status UnknownMaskField(std::string const& path, char const* request, char const* resource) {
  return InvalidArgumentError(std::string("Invalid update_mask provided in the ") + request + ": " + path +
                              " is not a known " + resource + " field.");
}

}  // namespace

Broker::Broker(Store& store, Clock& clock, BrokerOptions options)
    : store_(store), clock_(clock), options_(options) {
  // Waiting pulls wake as soon as a publish commits, not after its fsync: a fsync less between publish and
  // delivery (the functions benchmark's latency).
  store_.SetPublishListener([this](std::string const& topic) { Notify(topic); });
  if (options_.maintenance_interval.count() > 0) maintenance_ = std::thread([this] { MaintenanceLoop(); });
}

Broker::~Broker() {
  store_.SetPublishListener(nullptr);
  Shutdown();
}

void Broker::Shutdown() {
  {
    std::lock_guard lock(wait_mu_);
    stopping_ = true;
  }
  WakePulls();
  if (maintenance_.joinable()) maintenance_.join();
}

// ---- topics ----

StatusOr<Topic> Broker::CreateTopic(Topic topic) {
  FERRY_RETURN_IF_ERROR(NormalizeTopic(topic));
  FERRY_RETURN_IF_ERROR(store_.CreateTopic(topic));
  return topic;
}

StatusOr<Topic> Broker::GetTopic(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kTopic));
  return store_.GetTopic(name);
}

StatusOr<Topic> Broker::UpdateTopic(Topic const& patch, std::vector<std::string> const& update_mask) {
  FERRY_RETURN_IF_ERROR(CheckName(patch.name, ResourceKind::kTopic));
  if (update_mask.empty()) return InvalidArgumentError("The update_mask in the UpdateTopicRequest must be set.");
  FERRY_ASSIGN_OR_RETURN(Topic topic, store_.GetTopic(patch.name));
  for (auto const& raw : update_mask) {
    std::string path = ToLowerCamel(raw);
    if (path == "labels") {
      topic.labels = patch.labels;
    } else if (path == "messageRetentionDuration") {
      topic.message_retention_ms = patch.message_retention_ms;
    } else if (path == "kmsKeyName" || path == "messageStoragePolicy" || path == "schemaSettings") {
      // Accepted and ignored, as on create.
    } else {
      return UnknownMaskField(raw, "UpdateTopicRequest", "Topic");
    }
  }
  FERRY_RETURN_IF_ERROR(NormalizeTopic(topic));
  FERRY_RETURN_IF_ERROR(store_.UpdateTopic(topic));
  return topic;
}

Status Broker::DeleteTopic(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kTopic));
  return store_.DeleteTopic(name);
}

StatusOr<Paged<Topic>> Broker::ListTopics(std::string const& project, int page_size,
                                          std::string const& page_token) {
  int limit = ClampPageSize(page_size);
  FERRY_ASSIGN_OR_RETURN(auto topics, store_.ListTopics(project, {page_token, limit + 1}));
  return MakePage(std::move(topics), limit, [](Topic const& t) { return t.name; });
}

StatusOr<Paged<std::string>> Broker::ListTopicSubscriptions(std::string const& topic, int page_size,
                                                            std::string const& page_token) {
  FERRY_RETURN_IF_ERROR(CheckName(topic, ResourceKind::kTopic));
  int limit = ClampPageSize(page_size);
  FERRY_ASSIGN_OR_RETURN(auto names, store_.ListTopicSubscriptions(topic, {page_token, limit + 1}));
  return MakePage(std::move(names), limit, [](std::string const& n) { return n; });
}

// ---- subscriptions ----

StatusOr<Subscription> Broker::CreateSubscription(Subscription sub) {
  FERRY_RETURN_IF_ERROR(NormalizeSubscription(sub));
  if (sub.topic.empty()) return InvalidArgumentError("A subscription needs a topic");
  if (options_.check_push_endpoint) FERRY_RETURN_IF_ERROR(options_.check_push_endpoint(sub.push_config.push_endpoint));
  FERRY_RETURN_IF_ERROR(CheckName(sub.topic, ResourceKind::kTopic));
  FERRY_RETURN_IF_ERROR(store_.CreateSubscription(sub));
  return sub;
}

StatusOr<Subscription> Broker::GetSubscription(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kSubscription));
  return store_.GetSubscription(name);
}

StatusOr<Subscription> Broker::UpdateSubscription(Subscription const& patch,
                                                  std::vector<std::string> const& update_mask) {
  FERRY_RETURN_IF_ERROR(CheckName(patch.name, ResourceKind::kSubscription));
  if (update_mask.empty()) {
    return InvalidArgumentError("The update_mask in the UpdateSubscriptionRequest must be set.");
  }
  FERRY_ASSIGN_OR_RETURN(Subscription sub, store_.GetSubscription(patch.name));
  for (auto const& raw : update_mask) {
    std::string path = ToLowerCamel(raw);
    if (path == "ackDeadlineSeconds") {
      sub.ack_deadline_seconds = patch.ack_deadline_seconds;
    } else if (path == "pushConfig") {
      sub.push_config = patch.push_config;
    } else if (path == "retainAckedMessages") {
      sub.retain_acked_messages = patch.retain_acked_messages;
    } else if (path == "messageRetentionDuration") {
      sub.message_retention_ms = patch.message_retention_ms;
    } else if (path == "labels") {
      sub.labels = patch.labels;
    } else if (path == "expirationPolicy") {
      sub.expiration_ttl_ms = patch.expiration_ttl_ms;
    } else if (path == "filter") {
      sub.filter = patch.filter;
    } else if (path == "deadLetterPolicy") {
      sub.dead_letter_policy = patch.dead_letter_policy;
    } else if (path == "retryPolicy") {
      sub.retry_policy = patch.retry_policy;
      // A policy given with one bound keeps the other's default, as Pub/Sub fills it.
    } else if (path == "detached") {
      sub.detached = patch.detached;
    } else if (path == "enableExactlyOnceDelivery") {
      sub.enable_exactly_once_delivery = patch.enable_exactly_once_delivery;
    } else if (path == "enableMessageOrdering" || path == "topic" || path == "name") {
      return InvalidArgumentError("Invalid update_mask provided in the UpdateSubscriptionRequest: " + raw +
                                  " cannot be updated.");
    } else {
      return UnknownMaskField(raw, "UpdateSubscriptionRequest", "Subscription");
    }
  }
  FERRY_RETURN_IF_ERROR(NormalizeSubscription(sub));
  bool push_changed = std::find(update_mask.begin(), update_mask.end(), "pushConfig") != update_mask.end() ||
                      std::find(update_mask.begin(), update_mask.end(), "push_config") != update_mask.end();
  if (push_changed && options_.check_push_endpoint) {
    FERRY_RETURN_IF_ERROR(options_.check_push_endpoint(sub.push_config.push_endpoint));
  }
  FERRY_RETURN_IF_ERROR(store_.UpdateSubscription(sub));
  return sub;
}

Status Broker::DeleteSubscription(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kSubscription));
  return store_.DeleteSubscription(name);
}

StatusOr<Paged<Subscription>> Broker::ListSubscriptions(std::string const& project, int page_size,
                                                        std::string const& page_token) {
  int limit = ClampPageSize(page_size);
  FERRY_ASSIGN_OR_RETURN(auto subs, store_.ListSubscriptions(project, {page_token, limit + 1}));
  return MakePage(std::move(subs), limit, [](Subscription const& s) { return s.name; });
}

// ---- snapshots and seek ----

StatusOr<Snapshot> Broker::CreateSnapshot(std::string const& name, std::string const& subscription,
                                          Attributes labels) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kSnapshot));
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  FERRY_RETURN_IF_ERROR(ValidateLabels(labels));
  Snapshot snapshot{.name = name, .labels = std::move(labels)};
  return store_.CreateSnapshot(snapshot, subscription, NowMillis());
}

StatusOr<Snapshot> Broker::GetSnapshot(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kSnapshot));
  return store_.GetSnapshot(name);
}

StatusOr<Snapshot> Broker::UpdateSnapshot(Snapshot const& patch, std::vector<std::string> const& update_mask) {
  FERRY_RETURN_IF_ERROR(CheckName(patch.name, ResourceKind::kSnapshot));
  if (update_mask.empty()) return InvalidArgumentError("The update_mask in the UpdateSnapshotRequest must be set.");
  FERRY_ASSIGN_OR_RETURN(Snapshot snapshot, store_.GetSnapshot(patch.name));
  for (auto const& raw : update_mask) {
    std::string path = ToLowerCamel(raw);
    if (path == "labels") {
      snapshot.labels = patch.labels;
    } else if (path == "expireTime") {
      snapshot.expire_time_ms = patch.expire_time_ms;
    } else {
      return UnknownMaskField(raw, "UpdateSnapshotRequest", "Snapshot");
    }
  }
  FERRY_RETURN_IF_ERROR(ValidateLabels(snapshot.labels));
  FERRY_RETURN_IF_ERROR(store_.UpdateSnapshot(snapshot));
  return snapshot;
}

Status Broker::DeleteSnapshot(std::string const& name) {
  FERRY_RETURN_IF_ERROR(CheckName(name, ResourceKind::kSnapshot));
  return store_.DeleteSnapshot(name);
}

StatusOr<Paged<Snapshot>> Broker::ListSnapshots(std::string const& project, int page_size,
                                                std::string const& page_token) {
  int limit = ClampPageSize(page_size);
  FERRY_ASSIGN_OR_RETURN(auto snapshots, store_.ListSnapshots(project, {page_token, limit + 1}));
  return MakePage(std::move(snapshots), limit, [](Snapshot const& s) { return s.name; });
}

StatusOr<Paged<std::string>> Broker::ListTopicSnapshots(std::string const& topic, int page_size,
                                                        std::string const& page_token) {
  FERRY_RETURN_IF_ERROR(CheckName(topic, ResourceKind::kTopic));
  int limit = ClampPageSize(page_size);
  FERRY_ASSIGN_OR_RETURN(auto names, store_.ListTopicSnapshots(topic, {page_token, limit + 1}));
  return MakePage(std::move(names), limit, [](std::string const& n) { return n; });
}

Status Broker::SeekToTime(std::string const& subscription, int64_t time_ms) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  FERRY_RETURN_IF_ERROR(store_.SeekToTime(subscription, time_ms, NowMillis()));
  WakeSubscribersOf(subscription);
  return OkStatus();
}

Status Broker::SeekToSnapshot(std::string const& subscription, std::string const& snapshot) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  FERRY_RETURN_IF_ERROR(CheckName(snapshot, ResourceKind::kSnapshot));
  FERRY_RETURN_IF_ERROR(store_.SeekToSnapshot(subscription, snapshot, NowMillis()));
  WakeSubscribersOf(subscription);
  return OkStatus();
}

void Broker::WakeSubscribersOf(std::string const& subscription) {
  if (auto sub = store_.GetSubscription(subscription); sub.ok()) Notify(sub->topic);
}

// ---- data path ----

StatusOr<std::vector<std::string>> Broker::Publish(std::string const& topic, std::vector<PubsubMessage> messages) {
  latency::ScopedStage stage(Stage::kPublish);
  FERRY_RETURN_IF_ERROR(CheckName(topic, ResourceKind::kTopic));
  if (messages.empty()) return InvalidArgumentError("The request contains no messages");
  if (messages.size() > static_cast<std::size_t>(kMaxMessagesPerPublish)) {
    return InvalidArgumentError("The value for message_count is too large. You passed " +
                                std::to_string(messages.size()) + " in the request, but the maximum value is 1000.");
  }
  int64_t bytes = 0;
  for (auto const& m : messages) {
    FERRY_RETURN_IF_ERROR(ValidateMessage(m));
    bytes += static_cast<int64_t>(m.data.size());
  }
  FERRY_ASSIGN_OR_RETURN(auto ids, store_.Publish(topic, messages, NowMillis()));
  {
    std::lock_guard lock(counters_mu_);
    auto& c = counters_.topics[topic];
    c.published_messages += static_cast<int64_t>(ids.size());
    c.published_bytes += bytes;
  }
  return ids;  // the store told the waiting pulls at its commit (SetPublishListener), before the fsync
}

StatusOr<std::vector<ReceivedMessage>> Broker::Pull(std::string const& subscription, int max_messages,
                                                    bool return_immediately) {
  PullOptions options{.max_messages = max_messages};
  if (!return_immediately) options.wait = options_.pull_wait;
  return Pull(subscription, options);
}

StatusOr<std::vector<ReceivedMessage>> Broker::Pull(std::string const& subscription, PullOptions const& options) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (options.max_messages <= 0) return InvalidArgumentError("max_messages must be greater than 0");
  int max_messages = std::min(options.max_messages, kMaxPullMessages);
  FERRY_ASSIGN_OR_RETURN(auto sub, store_.GetSubscription(subscription));
  auto const wait_until = clock_.SteadyNow() + options.wait;

  while (true) {
    uint64_t generation = Generation(sub.topic);
    auto const lease_start = latency::Now();
    FERRY_ASSIGN_OR_RETURN(auto lease, store_.Lease(subscription, max_messages, NowMillis(),
                                                    options.ack_deadline_seconds, options.max_bytes));
    if (!lease.messages.empty()) latency::RecordSince(Stage::kDeliverLease, lease_start);
    if (lease.expired > 0 || lease.dead_lettered > 0 || !lease.messages.empty()) {
      std::lock_guard lock(counters_mu_);
      auto& c = counters_.subscriptions[subscription];
      c.delivered += static_cast<int64_t>(lease.messages.size());
      c.expired += lease.expired;
      c.dead_lettered += lease.dead_lettered;
    }
    if (lease.dead_lettered > 0 && sub.dead_letter_policy) Notify(sub.dead_letter_policy->dead_letter_topic);
    if (static_cast<int>(lease.messages.size()) == max_messages) {
      // There may be more than this pull could take: another stream of the subscription takes the rest.
      std::lock_guard lock(wait_mu_);
      if (auto it = waiters_.find(sub.topic); it != waiters_.end()) WakeOnePerSubscription(it->second, &subscription);
    }
    auto now = clock_.SteadyNow();
    if (!lease.messages.empty() || now >= wait_until) return std::move(lease.messages);

    std::unique_lock lock(wait_mu_);
    if (stopping_) return std::vector<ReceivedMessage>{};
    auto cancelled = [&] { return options.cancelled != nullptr && options.cancelled->load(); };
    auto& topic_generation = generations_[sub.topic];
    auto& waiting = waiters_[sub.topic];
    PullWaiter self{subscription, {}, false};
    waiting.push_back(&self);
    ++waiting_pulls_;
    // A publish that committed between the lease above and now found no waiter to wake: lease again at once.
    if (topic_generation.count == generation) {
      clock_.WaitUntil(self.cv, lock, std::min(wait_until, now + options_.pull_recheck),
                       [&] { return stopping_ || cancelled() || self.woken; });
    }
    --waiting_pulls_;
    waiting.erase(std::find(waiting.begin(), waiting.end(), &self));
    if (self.woken) latency::RecordSince(Stage::kDeliverWake, topic_generation.notified);
    if (stopping_ || cancelled()) {
      // The wake this pull took was for a message it will not lease: it goes to the next waiter.
      if (self.woken && !stopping_) WakeOnePerSubscription(waiting, &subscription);
      return std::vector<ReceivedMessage>{};
    }
  }
}

namespace {

// Pub/Sub's answer when an exactly-once acknowledgement cannot be applied.
Status InvalidAckIds(std::vector<std::string> const& invalid, std::vector<std::string>* out) {
  if (invalid.empty()) return OkStatus();
  if (out != nullptr) *out = invalid;
  return InvalidArgumentError("Some acknowledgement ids in the request were invalid. This could be because the "
                              "acknowledgement ids have expired or the acknowledgement ids were malformed.");
}

}  // namespace

Status Broker::Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                           std::vector<std::string>* invalid_ack_ids) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (ack_ids.empty()) return InvalidArgumentError("No ack ids specified");
  latency::ScopedStage stage(Stage::kAck);
  FERRY_ASSIGN_OR_RETURN(auto result, store_.Acknowledge(subscription, ack_ids, NowMillis()));
  {
    std::lock_guard lock(counters_mu_);
    counters_.subscriptions[subscription].acked += result.acked;
  }
  return InvalidAckIds(result.invalid_ack_ids, invalid_ack_ids);
}

Status Broker::ModifyAckDeadline(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                 int ack_deadline_seconds, std::vector<std::string>* invalid_ack_ids) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (ack_ids.empty()) return InvalidArgumentError("No ack ids specified");
  if (ack_deadline_seconds < 0 || ack_deadline_seconds > kMaxAckDeadlineSeconds) {
    return InvalidArgumentError("Invalid ack deadline given: " + std::to_string(ack_deadline_seconds) +
                                " (must be between 0 and 600 seconds)");
  }
  FERRY_ASSIGN_OR_RETURN(auto result, store_.ModifyAckDeadline(subscription, ack_ids, ack_deadline_seconds,
                                                               NowMillis()));
  CountNacked(subscription, result);
  return InvalidAckIds(result.invalid_ack_ids, invalid_ack_ids);
}

Status Broker::Nack(std::string const& subscription, std::string const& ack_id, std::string const& error) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  FERRY_ASSIGN_OR_RETURN(auto result, store_.Nack(subscription, ack_id, error, NowMillis()));
  CountNacked(subscription, result);
  return OkStatus();
}

Status Broker::ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (ack_ids.empty()) return OkStatus();
  FERRY_ASSIGN_OR_RETURN(int returned, store_.ReturnUnsent(subscription, ack_ids, NowMillis()));
  if (returned > 0) WakeSubscribersOf(subscription);
  return OkStatus();
}

StatusOr<std::vector<HeldMessage>> Broker::Peek(std::string const& subscription, int64_t after_id, int max) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (max < 1 || max > kMaxPullMessages) return InvalidArgumentError("A peek reads 1 to 1000 messages");
  return store_.Peek(subscription, std::max<int64_t>(after_id, 0), max);
}

StatusOr<std::vector<std::string>> Broker::MoveMessages(std::string const& subscription,
                                                        std::vector<std::string> const& message_ids,
                                                        std::string const& to_subscription,
                                                        MessageRewrite const& rewrite) {
  FERRY_RETURN_IF_ERROR(CheckName(subscription, ResourceKind::kSubscription));
  if (!to_subscription.empty()) FERRY_RETURN_IF_ERROR(CheckName(to_subscription, ResourceKind::kSubscription));
  if (message_ids.size() > static_cast<std::size_t>(kMaxPullMessages)) {
    return InvalidArgumentError("At most 1000 messages a call");
  }
  for (auto const& id : message_ids) {
    if (!DecodeMessageId(id)) return InvalidArgumentError("Invalid message id \"" + id.substr(0, 64) + "\"");
  }
  FERRY_ASSIGN_OR_RETURN(auto moved, store_.MoveMessages(subscription, message_ids, to_subscription, rewrite,
                                                         NowMillis()));
  if (!moved.empty() && !to_subscription.empty()) WakeSubscribersOf(to_subscription);
  return moved;
}

void Broker::CountNacked(std::string const& subscription, ModifyResult const& result) {
  if (result.nacked == 0) return;
  {
    std::lock_guard lock(counters_mu_);
    auto& c = counters_.subscriptions[subscription];
    c.nacked += result.nacked;
    c.dead_lettered += result.dead_lettered;
  }
  auto sub = store_.GetSubscription(subscription);
  if (sub.ok()) {
    Notify(sub->topic);
    if (result.dead_lettered > 0 && sub->dead_letter_policy) Notify(sub->dead_letter_policy->dead_letter_topic);
  }
}

Status Broker::RunMaintenance() {
  int64_t now = NowMillis();
  int64_t last = last_retention_ms_.load();
  bool retention_due = last == std::numeric_limits<int64_t>::min() || now - last >= options_.retention_interval.count();
  FERRY_ASSIGN_OR_RETURN(auto result, store_.Maintain(now, retention_due));
  if (retention_due) last_retention_ms_ = now;
  for (auto const& [sub, count] : result.dead_lettered) {
    CountDeadLettered(sub, count);
    auto spec = store_.GetSubscription(sub);
    if (spec.ok() && spec->dead_letter_policy) Notify(spec->dead_letter_policy->dead_letter_topic);
  }
  return OkStatus();
}

BrokerCounters Broker::Counters() const {
  std::lock_guard lock(counters_mu_);
  return counters_;
}

void Broker::CountDeadLettered(std::string const& subscription, int count) {
  std::lock_guard lock(counters_mu_);
  counters_.subscriptions[subscription].dead_lettered += count;
}

void Broker::Notify(std::string const& topic) {
  {
    std::lock_guard lock(wait_mu_);
    auto& generation = generations_[topic];
    ++generation.count;
    generation.notified = latency::Now();
    if (work_listener_) work_listener_(topic);
    if (auto it = waiters_.find(topic); it != waiters_.end()) WakeOnePerSubscription(it->second, nullptr);
  }
}

void Broker::WakeOnePerSubscription(std::vector<PullWaiter*>& waiters, std::string const* subscription) {
  // Few streams wait on one topic (a client opens 5 per subscriber), so scans beat an index here.
  std::vector<std::string const*> woken;
  for (PullWaiter* w : waiters) {
    if (w->woken || (subscription != nullptr && w->subscription != *subscription)) continue;
    if (std::any_of(woken.begin(), woken.end(), [&](auto const* s) { return *s == w->subscription; })) continue;
    w->woken = true;
    w->cv.notify_one();  // under wait_mu_: the waiter, and its cv, live until it has the lock again
    woken.push_back(&w->subscription);
    if (subscription != nullptr) return;
  }
}

void Broker::SetWorkListener(std::function<void(std::string const& topic)> listener) {
  std::lock_guard lock(wait_mu_);
  work_listener_ = std::move(listener);
}

void Broker::WakePulls() {
  std::lock_guard lock(wait_mu_);
  for (auto const& [topic, waiting] : waiters_) {
    for (PullWaiter* w : waiting) w->cv.notify_one();
  }
  wait_cv_.notify_all();
}

int Broker::WaitingPulls() {
  std::lock_guard lock(wait_mu_);
  return waiting_pulls_;
}

uint64_t Broker::Generation(std::string const& topic) {
  std::lock_guard lock(wait_mu_);
  return generations_[topic].count;
}

void Broker::MaintenanceLoop() {
  std::unique_lock lock(wait_mu_);
  while (!stopping_) {
    clock_.WaitFor(wait_cv_, lock, options_.maintenance_interval, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (auto st = RunMaintenance(); !st.ok()) {
      std::fprintf(stderr, "ferry: maintenance failed: %s\n", st.message().c_str());
    }
    lock.lock();
  }
}

}  // namespace ferry
