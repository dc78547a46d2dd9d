#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// What an ack id names: one delivery attempt of one message on one subscription, between two of its seeks.
// Opaque to clients.
struct AckRef {
  int64_t subscription_id = 0;
  int64_t message_id = 0;
  int attempt = 0;
  // How many seeks the subscription had when the message was leased. A seek sets the whole subscription's
  // acknowledgement state, so an ack (or deadline change) of a delivery from before it must not undo it:
  // ack ids from before a seek name nothing.
  int64_t seeks = 0;
};

// Whether `ref` was handed out by the subscription with this id and seek count.
inline bool IssuedBy(AckRef const& ref, int64_t subscription_id, int64_t seeks) {
  return ref.subscription_id == subscription_id && ref.seeks == seeks;
}

// "s-m-a", or "s-m-a-k" after k seeks, in decimal.
std::string EncodeAckId(AckRef const& ref);
// A message id as Ferry assigns them (a positive decimal number), or nullopt.
std::optional<int64_t> DecodeMessageId(std::string_view id);
std::optional<AckRef> DecodeAckId(std::string_view ack_id);
// All of them, or INVALID_ARGUMENT naming the first that is malformed.
StatusOr<std::vector<AckRef>> DecodeAckIds(std::vector<std::string> const& ack_ids);

}  // namespace ferry
