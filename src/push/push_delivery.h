#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "push/push_policy.h"

namespace ferry {

struct PushOptions {
  // How often the set of push subscriptions is read again (new, changed, deleted ones).
  std::chrono::milliseconds rescan{1000};
  // Messages leased per round of one subscription.
  int batch = 10;
  // After a failed push the subscription waits this long, doubling per failure in a row up to max_backoff, as
  // Pub/Sub slows pushes to a failing endpoint.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{10'000};
  // Threads that push, whatever the number of push subscriptions; each serves one subscription at a time.
  int workers = 8;
  // An idle subscription is looked at again even without a publish (a lease that ran out, a seek, a message
  // moved back by another client): first after idle_recheck, then twice as long after each round that found
  // nothing, up to max_idle_recheck. Each look is a lease in the store: with a fixed interval an idle daemon's
  // store worked for every push subscription twice a second. A publish to its topic makes it due at once.
  std::chrono::milliseconds idle_recheck{500};
  std::chrono::milliseconds max_idle_recheck{5000};
};

// Push subscriptions: POSTs each message to the subscription's pushEndpoint, in Pub/Sub's wrapped body
// {"message": {...}, "subscription": "..."} or, with noWrapper, the data alone (attributes and metadata as
// headers with writeMetadata; an attribute that is not a valid header is left out). Only to addresses `policy`
// allows. A 2xx answer acks; anything else, or no answer within the ack deadline, nacks
// under the subscription's retry and dead-letter policies. A fixed pool of workers serves every push subscription:
// a publish wakes the subscriptions of its topic; each subscription is served by one worker at a time, in rounds
// of up to `batch` messages.
class PushDelivery {
 public:
  // `policy` (which addresses may be pushed to) must outlive this.
  PushDelivery(Broker& broker, PushPolicy const& policy, PushOptions options = {});
  ~PushDelivery();
  PushDelivery(PushDelivery const&) = delete;
  PushDelivery& operator=(PushDelivery const&) = delete;

  void Start();
  void Stop();

  // The request a message makes. Public for tests.
  struct Request {
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  static Request MakeRequest(Subscription const& sub, ReceivedMessage const& message);

 private:
  using Steady = std::chrono::steady_clock;
  // One push subscription's place in the schedule.
  struct Entry {
    Subscription sub;
    Steady::time_point next_round;            // not before then (a backoff, or the idle recheck)
    std::chrono::milliseconds backoff{0};     // doubles per failed push in a row
    std::chrono::milliseconds idle{0};        // doubles per round in a row that found nothing
    bool busy = false;                        // a worker has it
  };
  void ManageLoop();
  void Rescan();
  void WorkLoop();
  // One round for one subscription: lease up to a batch, push each, ack or nack. Returns whether it leased
  // anything, and the backoff it ends with.
  bool Round(Subscription const& sub, std::chrono::milliseconds& backoff);
  void OnWork(std::string const& topic);

  Broker& broker_;
  PushPolicy const& policy_;
  PushOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;                    // workers: an entry may be due, or stopping
  std::condition_variable stop_cv_;               // the manager: stopping
  bool stopping_ = false;                         // GUARDED_BY(mu_)
  std::map<std::string, Entry> entries_;          // GUARDED_BY(mu_): by subscription name
  std::thread manager_;
  std::vector<std::thread> workers_;
};

}  // namespace ferry
