#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

// What happens to a message after a delivery attempt fails (a nack, or a lease that ran out), written once for
// every backend: the store decides when, these decide what.

// Ferry's addition to dead-lettered messages: the last error of the function that failed them (at most 1024
// bytes, Pub/Sub's attribute value limit).
inline constexpr char kLastErrorAttribute[] = "FerryLastError";
// A dead-lettered message's id on its source topic: what its executions are recorded under.
inline constexpr char kSourceMessageIdAttribute[] = "FerrySourceMessageId";

// Ferry's count of a message's redrives from its dead-letter subscription, on the redriven copy.
inline constexpr char kRedriveCountAttribute[] = "FerryRedriveCount";

struct AfterFailure {
  bool dead_letter = false;  // no attempt left: to the dead-letter topic (if it still exists)
  int64_t retry_at_ms = 0;   // otherwise (or when the dead-letter topic is gone) deliverable again from then
};

// The attempt numbered `attempts` (1 for the first delivery) failed at `failed_at_ms`.
AfterFailure OnFailedAttempt(Subscription const& sub, int attempts, int64_t failed_at_ms);

// Whether a delivery that has made `attempts` attempts has none left.
bool Exhausted(Subscription const& sub, int attempts);

// `message` as the dead-letter topic receives it: with Pub/Sub's CloudPubSubDeadLetterSource* attributes and,
// when known, the last error.
StatusOr<PubsubMessage> DeadLetterCopy(PubsubMessage message, Subscription const& sub, int attempts,
                                       std::optional<std::string> const& last_error);

// A dead-lettered message as a redrive sends it back: its data, ordering key and attributes, without the
// dead-letter ones (CloudPubSubDeadLetterSource*, FerryLastError, FerrySourceMessageId), with kRedriveCountAttribute one more than it
// carried.
PubsubMessage RedriveCopy(PubsubMessage message);

}  // namespace ferry
