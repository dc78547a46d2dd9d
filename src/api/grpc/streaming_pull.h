#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "broker/broker.h"
#include "common/clock.h"
#include "google/pubsub/v1/pubsub.pb.h"

namespace ferry {

// A StreamingPull, split as google-cloud-cpp splits its subscriber session: the session (reads acks and
// deadline changes, writes messages), flow control (StreamFlowControl, one per stream), lease management
// (LeaseRegistry, one per server, since an ack may come on any stream or as a unary call) and the message
// source (the broker's leases). Each part waits on the injected Clock, so tests drive it with a fake one.

// Conversions the session shares with the unary methods.
void SetTimestamp(int64_t ms, google::protobuf::Timestamp* out);
void ToProto(ReceivedMessage const& received, google::pubsub::v1::ReceivedMessage* out);

// The stream as a session sees it: gRPC's ServerReaderWriter in the server, an in-memory pair in tests.
class PullStream {
 public:
  virtual ~PullStream() = default;
  // Blocks for the client's next request; false once the client half-closed, cancelled or the call ended.
  virtual bool Read(google::pubsub::v1::StreamingPullRequest* request) = 0;
  // False when the response could not be sent (the client left).
  virtual bool Write(google::pubsub::v1::StreamingPullResponse const& response) = 0;
  virtual bool Cancelled() = 0;
  // Ends the call: a Read that blocks returns false.
  virtual void Cancel() = 0;
};

// The messages one stream has handed out and not yet seen settled, against its max_outstanding_messages and
// max_outstanding_bytes. A message whose lease ran out stops counting at its deadline (on the clock).
class StreamFlowControl {
 public:
  StreamFlowControl(Clock const& clock, int64_t max_messages, int64_t max_bytes)
      : clock_(clock), max_messages_(max_messages), max_bytes_(max_bytes) {}

  // How many messages may be sent now; waits up to `wait` for room. 0 when closed or still full.
  int Room(std::chrono::milliseconds wait);
  void Add(std::string const& ack_id, int64_t bytes, SteadyPoint deadline);
  // Ends the count of these messages (acked or nacked). True when any was this stream's.
  bool Settle(std::vector<std::string> const& ack_ids);
  void Extend(std::vector<std::string> const& ack_ids, SteadyPoint deadline);
  void Close();
  bool closed();
  std::vector<std::string> AckIds();
  int64_t outstanding();

 private:
  struct Lease {
    int64_t bytes;
    SteadyPoint deadline;
  };
  bool Full() const;      // REQUIRES(mu_)
  void DropExpired();     // REQUIRES(mu_)

  Clock const& clock_;
  int64_t const max_messages_;
  int64_t const max_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  absl::flat_hash_map<std::string, Lease> leases_;  // GUARDED_BY(mu_)
  int64_t bytes_ = 0;                              // GUARDED_BY(mu_): of the messages out now
  int64_t sent_bytes_ = 0;                         // GUARDED_BY(mu_): of every message sent, for the average
  int64_t sent_count_ = 0;                         // GUARDED_BY(mu_)
  bool closed_ = false;                            // GUARDED_BY(mu_)
};

// Which open stream handed out each ack id, so an ack or deadline change arriving by any path (on the stream or
// unary, as the Node.js client sends them) reaches that stream's flow control.
class LeaseRegistry {
 public:
  explicit LeaseRegistry(Clock const& clock) : clock_(clock) {}
  void Add(std::vector<std::string> const& ack_ids, std::shared_ptr<StreamFlowControl> const& stream);
  void Settle(std::vector<std::string> const& ack_ids);
  void Extend(std::vector<std::string> const& ack_ids, int seconds);
  void Forget(std::vector<std::string> const& ack_ids);

 private:
  Clock const& clock_;
  std::mutex mu_;
  // Open addressing: an ack or deadline change looks up every id it names, here and in its stream's leases_,
  // and with thousands out a node-based map's lookups were mostly cache misses.
  absl::flat_hash_map<std::string, std::weak_ptr<StreamFlowControl>> index_;  // GUARDED_BY(mu_)
};

// One StreamingPull from its first request to its end.
class StreamingPullSession {
 public:
  struct Options {
    // How long a wait for messages or room lasts before the session looks whether its client is still there.
    std::chrono::milliseconds poll{500};
  };
  StreamingPullSession(Broker& broker, Clock const& clock, LeaseRegistry& leases, std::atomic<bool> const& stopping,
                       Options options);
  StreamingPullSession(Broker& broker, Clock const& clock, LeaseRegistry& leases, std::atomic<bool> const& stopping)
      : StreamingPullSession(broker, clock, leases, stopping, Options{}) {}

  // Serves `stream`, whose first request `first` was read, until the client or the server ends it. Messages
  // leased for it that it could not send go back at once, their attempt not counted. The error that ended it,
  // or OK.
  Status Run(PullStream& stream, google::pubsub::v1::StreamingPullRequest const& first);

 private:
  Broker& broker_;
  Clock const& clock_;
  LeaseRegistry& leases_;
  std::atomic<bool> const& stopping_;
  Options const options_;
};

}  // namespace ferry
