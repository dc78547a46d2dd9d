#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/latency_stages.h"
#include "ferry/status.h"
#include "model/resources.h"
#include "store/store.h"

namespace ferry {

struct BrokerOptions {
  // How long a pull with returnImmediately=false waits for a first message before answering empty.
  std::chrono::milliseconds pull_wait{5000};
  // While waiting, a pull looks again this often, for messages whose backoff ended or that another node added.
  std::chrono::milliseconds pull_recheck{200};
  // How often expired leases are dead-lettered; zero: only when RunMaintenance() is called.
  std::chrono::milliseconds maintenance_interval{1000};
  // How often maintenance also drops messages past their retention.
  std::chrono::milliseconds retention_interval{60'000};
  // Refuses a push endpoint that may not be pushed to, when a subscription is created or its push config changes.
  std::function<Status(std::string const& endpoint)> check_push_endpoint;
};

// Counters since start, for /metrics. Backlog and age come from the store.
struct TopicCounters {
  int64_t published_messages = 0;
  int64_t published_bytes = 0;
};
struct SubscriptionCounters {
  int64_t delivered = 0;
  int64_t acked = 0;
  int64_t nacked = 0;
  int64_t expired = 0;
  int64_t dead_lettered = 0;
};
struct BrokerCounters {
  std::map<std::string, TopicCounters> topics;
  std::map<std::string, SubscriptionCounters> subscriptions;
};

// One page of a listing; next_page_token is empty on the last page.
template <typename T>
struct Paged {
  std::vector<T> items;
  std::string next_page_token;
};

// Pub/Sub semantics over a Store: validation with Google's codes and messages, defaults, field-mask
// updates, long-poll pulls, background dead-lettering and retention, and delivery counters. The API layers
// (REST, later gRPC) are thin codecs over it. Thread-safe; Pull blocks its caller while it waits.
class Broker {
 public:
  Broker(Store& store, Clock& clock, BrokerOptions options = {});
  ~Broker();
  Broker(Broker const&) = delete;
  Broker& operator=(Broker const&) = delete;

  // The clock it reads and waits on; what serves its subscribers waits on the same one.
  Clock const& clock() const { return clock_; }
  // How long an empty pull that does not return immediately waits for a first message.
  std::chrono::milliseconds pull_wait() const { return options_.pull_wait; }
  // Pulls waiting for a first message now.
  int WaitingPulls();
  // Wakes the waiting pulls to look at their `cancelled` flag.
  void WakePulls();

  StatusOr<Topic> CreateTopic(Topic topic);
  StatusOr<Topic> GetTopic(std::string const& name);
  // `update_mask` holds field paths, camelCase or snake_case.
  StatusOr<Topic> UpdateTopic(Topic const& patch, std::vector<std::string> const& update_mask);
  Status DeleteTopic(std::string const& name);
  StatusOr<Paged<Topic>> ListTopics(std::string const& project, int page_size, std::string const& page_token);
  StatusOr<Paged<std::string>> ListTopicSubscriptions(std::string const& topic, int page_size,
                                                      std::string const& page_token);

  StatusOr<Subscription> CreateSubscription(Subscription sub);
  StatusOr<Subscription> GetSubscription(std::string const& name);
  StatusOr<Subscription> UpdateSubscription(Subscription const& patch, std::vector<std::string> const& update_mask);
  Status DeleteSubscription(std::string const& name);
  StatusOr<Paged<Subscription>> ListSubscriptions(std::string const& project, int page_size,
                                                  std::string const& page_token);

  StatusOr<std::vector<Subscription>> ListPushSubscriptions() { return store_.ListPushSubscriptions(); }

  // ---- snapshots and seek ----
  // `name` is projects/{p}/snapshots/{s}.
  StatusOr<Snapshot> CreateSnapshot(std::string const& name, std::string const& subscription, Attributes labels);
  StatusOr<Snapshot> GetSnapshot(std::string const& name);
  // `update_mask` paths: labels, expireTime.
  StatusOr<Snapshot> UpdateSnapshot(Snapshot const& patch, std::vector<std::string> const& update_mask);
  Status DeleteSnapshot(std::string const& name);
  StatusOr<Paged<Snapshot>> ListSnapshots(std::string const& project, int page_size, std::string const& page_token);
  StatusOr<Paged<std::string>> ListTopicSnapshots(std::string const& topic, int page_size,
                                                  std::string const& page_token);
  Status SeekToTime(std::string const& subscription, int64_t time_ms);
  Status SeekToSnapshot(std::string const& subscription, std::string const& snapshot);

  StatusOr<std::vector<std::string>> Publish(std::string const& topic, std::vector<PubsubMessage> messages);
  // Leases up to `max_messages`. Unless `return_immediately`, an empty pull waits up to pull_wait for one.
  StatusOr<std::vector<ReceivedMessage>> Pull(std::string const& subscription, int max_messages,
                                              bool return_immediately);
  struct PullOptions {
    int max_messages = 1;
    // An empty pull waits this long (on the broker's clock) for a first message; 0 answers at once.
    std::chrono::milliseconds wait{0};
    int ack_deadline_seconds = 0;  // the lease; 0: the subscription's ack deadline
    // When set, the wait ends once it holds (after WakePulls), with nothing leased: its caller has gone.
    std::atomic<bool> const* cancelled = nullptr;
    int64_t max_bytes = MessageQueue::kMaxLeaseBytes;  // a pull's messages stop short of this many bytes
  };
  StatusOr<std::vector<ReceivedMessage>> Pull(std::string const& subscription, PullOptions const& options);
  // On an exactly-once subscription an ack id whose lease is not current fails the call with INVALID_ARGUMENT
  // after the valid ones are applied, and is listed in `invalid_ack_ids` when given.
  Status Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                     std::vector<std::string>* invalid_ack_ids = nullptr);
  Status ModifyAckDeadline(std::string const& subscription, std::vector<std::string> const& ack_ids,
                           int ack_deadline_seconds, std::vector<std::string>* invalid_ack_ids = nullptr);
  // A nack that keeps the error; a dead-lettered message carries it (kLastErrorAttribute).
  Status Nack(std::string const& subscription, std::string const& ack_id, std::string const& error);
  // Leases that never reached a subscriber (its stream or connection ended first): available again at once, to
  // whoever pulls next, with no delivery attempt counted and no backoff. Not a nack.
  Status ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids);

  // ---- Ferry's own: reading a backlog, and moving messages (dead-letter redrive: broker/dead_letters.h) ----
  // Up to `max` (1 to 1000) messages `subscription` holds, after message id `after_id`, without leasing them.
  StatusOr<std::vector<HeldMessage>> Peek(std::string const& subscription, int64_t after_id, int max);
  // MessageQueue::MoveMessages, at most 1000 ids a call; wakes the destination's subscribers.
  StatusOr<std::vector<std::string>> MoveMessages(std::string const& subscription,
                                                  std::vector<std::string> const& message_ids,
                                                  std::string const& to_subscription, MessageRewrite const& rewrite);

  // Wakes every waiting pull (they answer empty) and stops background work; later pulls do not wait. For an
  // orderly stop: call before stopping the servers that call in.
  void Shutdown();

  // One round of background work: dead-letter expired leases with no attempt left, and apply retention when
  // retention_interval has passed since it last ran (always on the first round).
  Status RunMaintenance();

  // Called (on whatever thread made the change, so it must be quick) each time a topic's subscriptions may have
  // new work: a publish, a nack, a seek. For consumers that serve many subscriptions from a few threads.
  void SetWorkListener(std::function<void(std::string const& topic)> listener);

  BrokerCounters Counters() const;
  StatusOr<std::vector<SubscriptionStats>> Stats() { return store_.Stats(); }
  int64_t NowMillis() const { return ToUnixMillis(clock_.Now()); }

 private:
  void Notify(std::string const& topic);
  void WakeSubscribersOf(std::string const& subscription);
  uint64_t Generation(std::string const& topic);
  void CountNacked(std::string const& subscription, ModifyResult const& result);
  void CountDeadLettered(std::string const& subscription, int count);
  void MaintenanceLoop();

  Store& store_;
  Clock& clock_;
  BrokerOptions options_;

  // A pull waiting for a first message. A publish wakes one waiter per subscription of its topic (the one that
  // has waited longest), not every stream: a message needs one lease, and each woken stream costs a lease.
  struct PullWaiter {
    std::string const& subscription;
    std::condition_variable cv;
    bool woken = false;  // GUARDED_BY(wait_mu_)
  };
  // Wakes the longest-waiting, not yet woken waiter of each subscription in `waiters` (only of `subscription`,
  // when given). REQUIRES(wait_mu_).
  static void WakeOnePerSubscription(std::vector<PullWaiter*>& waiters, std::string const* subscription);

  std::mutex wait_mu_;
  std::condition_variable wait_cv_;  // the maintenance loop's
  std::map<std::string, std::vector<PullWaiter*>> waiters_;  // GUARDED_BY(wait_mu_): by topic, oldest first
  struct Generation_ {
    uint64_t count = 0;                     // bumped when a topic's subscriptions gain work
    latency::Clock::time_point notified{};  // when, for the stage histograms
  };
  std::map<std::string, Generation_> generations_;  // GUARDED_BY(wait_mu_)
  std::function<void(std::string const&)> work_listener_;  // GUARDED_BY(wait_mu_)
  bool stopping_ = false;                        // GUARDED_BY(wait_mu_)
  int waiting_pulls_ = 0;                        // GUARDED_BY(wait_mu_)

  mutable std::mutex counters_mu_;
  BrokerCounters counters_;  // GUARDED_BY(counters_mu_)

  std::atomic<int64_t> last_retention_ms_{std::numeric_limits<int64_t>::min()};
  std::thread maintenance_;
};

}  // namespace ferry
