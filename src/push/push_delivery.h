#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
};

// Push subscriptions: POSTs each message to the subscription's pushEndpoint, in Pub/Sub's wrapped body
// {"message": {...}, "subscription": "..."} or, with noWrapper, the data alone (attributes and metadata as
// headers with writeMetadata; an attribute that is not a valid header is left out). Only to addresses `policy`
// allows. A 2xx answer acks; anything else, or no answer within the ack deadline, nacks
// under the subscription's retry and dead-letter policies. One thread per push subscription.
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
  struct Worker;
  void ManageLoop();
  void Rescan();
  void WorkLoop(Worker& worker);

  Broker& broker_;
  PushPolicy const& policy_;
  PushOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                                 // GUARDED_BY(mu_)
  std::map<std::string, std::unique_ptr<Worker>> workers_;  // by subscription name; only on manager_
  std::thread manager_;
};

}  // namespace ferry
