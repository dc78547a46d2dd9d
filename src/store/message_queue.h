#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

struct LeaseResult {
  std::vector<ReceivedMessage> messages;
  int expired = 0;        // leases found expired and handed out again
  int dead_lettered = 0;  // exhausted messages moved to the dead-letter topic instead
};

struct ModifyResult {
  int nacked = 0;
  int dead_lettered = 0;
  // Exactly-once subscriptions only: ack ids whose lease is no longer current (expired, settled, redelivered).
  std::vector<std::string> invalid_ack_ids;
};

struct AckResult {
  int acked = 0;
  // Exactly-once subscriptions only: ack ids whose lease is no longer current, so the ack did nothing. Elsewhere
  // any attempt's ack id acknowledges its message and stale ones are ignored.
  std::vector<std::string> invalid_ack_ids;
};

struct MaintenanceResult {
  // Per subscription name: leases that expired with no delivery attempt left and went to the dead-letter topic.
  std::vector<std::pair<std::string, int>> dead_lettered;
  int64_t dropped_by_retention = 0;
};

// A message as a subscription holds it, read without leasing it.
struct HeldMessage {
  PubsubMessage message;
  int attempts = 0;     // deliveries so far
  bool leased = false;  // out to a subscriber now (or its lease ran out and it waits to be handed out again)
};

// Rewrites a message as MoveMessages republishes it.
using MessageRewrite = std::function<PubsubMessage(PubsubMessage)>;

struct SubscriptionStats {
  std::string name;
  int64_t backlog = 0;                  // messages not yet acknowledged
  int64_t oldest_unacked_publish_ms = 0;  // 0 with an empty backlog
};

// Messages and their leases: each subscription's copy of every message, and who holds it until when. A message
// is leased, acknowledged, nacked or dead-lettered only through here, so several daemons sharing one database
// can deliver from it. What happens after a failed attempt (retry backoff, dead letter) is store/delivery_policy.h.
class MessageQueue {
 public:
  virtual ~MessageQueue() = default;

  // Appends the messages, hands a copy to each subscription of the topic, returns their ids in order.
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> Publish(std::string const& topic,
                                                                   std::vector<PubsubMessage> const& messages,
                                                                   int64_t now_ms) = 0;
  // Leases up to `max` deliverable messages for `ack_deadline_seconds` (0: the subscription's ack deadline),
  // and no more than `max_bytes` of them (data, attributes and ordering key; the first message always goes): the
  // rest stay available, with no delivery attempt counted. Messages whose last lease expired with no attempts
  // left go to the dead-letter topic instead.
  [[nodiscard]] virtual StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms,
                                                    int ack_deadline_seconds, int64_t max_bytes) = 0;
  [[nodiscard]] StatusOr<LeaseResult> Lease(std::string const& subscription, int max, int64_t now_ms) {
    return Lease(subscription, max, now_ms, 0, kMaxLeaseBytes);
  }
  // What one pull or StreamingPull response carries at most: a response stays well under gRPC's 64 MB send limit
  // and a REST answer's memory is bounded, whatever the messages' sizes.
  static constexpr int64_t kMaxLeaseBytes = 16 * 1000 * 1000;
  // Removes the acknowledged messages (or keeps them as acknowledged, with retainAckedMessages). Malformed ack ids
  // are INVALID_ARGUMENT.
  [[nodiscard]] virtual StatusOr<AckResult> Acknowledge(std::string const& subscription,
                                                        std::vector<std::string> const& ack_ids, int64_t now_ms) = 0;
  // Sets the lease of each message to `seconds` from now; 0 is a nack (retry policy backoff, or dead letter
  // when no attempt is left).
  [[nodiscard]] virtual StatusOr<ModifyResult> ModifyAckDeadline(std::string const& subscription,
                                                                 std::vector<std::string> const& ack_ids,
                                                                 int seconds, int64_t now_ms) = 0;

  // Gives back leases whose messages never reached a subscriber (the stream they were leased for ended before
  // they were sent): available again at once, and their delivery attempt not counted, so the next delivery has
  // the attempt number this one would have had. Ack ids whose lease is no longer current are skipped. Returns how
  // many came back.
  [[nodiscard]] virtual StatusOr<int> ReturnUnsent(std::string const& subscription,
                                                   std::vector<std::string> const& ack_ids, int64_t now_ms) = 0;

  // A nack (as ModifyAckDeadline with 0) that keeps `error` with the delivery: when the message is
  // dead-lettered, the error travels with it in the kLastErrorAttribute attribute.
  [[nodiscard]] virtual StatusOr<ModifyResult> Nack(std::string const& subscription, std::string const& ack_id,
                                                    std::string const& error, int64_t now_ms) = 0;

  // Up to `max` of the messages `subscription` holds unacknowledged, in publish order, those after message id
  // `after_id` (0: from the first): read only, no lease taken and no attempt counted.
  [[nodiscard]] virtual StatusOr<std::vector<HeldMessage>> Peek(std::string const& subscription, int64_t after_id,
                                                                int max) = 0;
  // In one transaction, takes each of `message_ids` that `subscription` holds unacknowledged off it (as an ack
  // would) and, unless `to_subscription` is empty, publishes `rewrite(message)` to that subscription's topic for
  // that subscription alone: dead-letter redrive (back to the subscription that gave up on it) and purge, which a
  // crash neither loses nor doubles. Ids it does not hold are skipped. Returns the ids taken.
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> MoveMessages(std::string const& subscription,
                                                                        std::vector<std::string> const& message_ids,
                                                                        std::string const& to_subscription,
                                                                        MessageRewrite const& rewrite,
                                                                        int64_t now_ms) = 0;

  // Dead-letters expired leases that have no attempt left and, with `apply_retention`, drops messages past their
  // subscription's retention and expired snapshots (a scan of every backlog, so callers do it less often).
  [[nodiscard]] virtual StatusOr<MaintenanceResult> Maintain(int64_t now_ms, bool apply_retention) = 0;
  [[nodiscard]] virtual StatusOr<std::vector<SubscriptionStats>> Stats() = 0;

  // Called after a commit that added messages to `topic` (possibly before the fsync that makes them durable: a
  // consumer may see them that soon; their publisher is answered after it). Must not block; nullptr removes it.
  virtual void SetPublishListener(std::function<void(std::string const& topic)> listener) = 0;
};

}  // namespace ferry
