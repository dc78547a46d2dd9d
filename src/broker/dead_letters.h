#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "broker/broker.h"

namespace ferry {

// Dead-letter redrive, which Google's Pub/Sub lacks. A subscription with a dead-letter policy publishes what it gives
// up on to its dead-letter topic, with the CloudPubSubDeadLetterSource* attributes naming it and Ferry's
// FerryLastError. The messages stay on that topic's dead-letter subscription: `ferry deploy` makes one for each
// function's dead-letter topic, named by DeadLetterSubscriptionName. From there they can be listed, sent back to
// the subscription they came from (each batch in one transaction, so a crash neither loses nor doubles one), or
// purged.

// The subscription `ferry deploy` makes on a dead-letter topic (projects/{p}/topics/{t}) to keep its messages:
// projects/{p}/subscriptions/ferry-dead-letters-{t}.
std::string DeadLetterSubscriptionName(std::string const& dead_letter_topic);

struct DeadLetterEntry {
  HeldMessage held;             // as the dead-letter subscription holds it: its own id, every attribute
  int delivery_attempts = 0;    // CloudPubSubDeadLetterSourceDeliveryCount
  std::string last_error;       // FerryLastError
  int redrives = 0;             // FerryRedriveCount: how often it was sent back before
};

struct DeadLetterPage {
  std::string dead_letter_subscription;
  std::vector<DeadLetterEntry> messages;
  int64_t next_after = 0;  // when more may follow: the message id to list after; 0 at the end
};

class DeadLetters {
 public:
  explicit DeadLetters(Broker& broker) : broker_(broker) {}

  // Where `source`'s dead letters are kept: the ferry-dead-letters subscription of its dead-letter topic, or that
  // topic's only subscription (or, of several, the first by name). FAILED_PRECONDITION when `source` has no
  // dead-letter policy or its topic no subscription (its dead letters were not kept).
  StatusOr<std::string> SubscriptionOf(std::string const& source);
  // Up to `max` of the messages `source` dead-lettered, oldest first, after message id `after`.
  StatusOr<DeadLetterPage> List(std::string const& source, int64_t after, int max);
  // Sends messages `source` dead-lettered (by their ids on the dead-letter subscription, or every one with `all`)
  // back to `source` alone, as RedriveCopy makes them. Returns the ids redriven; ids not found are skipped.
  StatusOr<std::vector<std::string>> Redrive(std::string const& source, std::vector<std::string> const& ids, bool all);
  // The same, dropping them instead.
  StatusOr<std::vector<std::string>> Purge(std::string const& source, std::vector<std::string> const& ids, bool all);

 private:
  StatusOr<std::vector<std::string>> Move(std::string const& source, std::vector<std::string> ids, bool all,
                                          bool redrive);

  Broker& broker_;
};

}  // namespace ferry
