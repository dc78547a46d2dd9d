#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// What an ack id names: one delivery attempt of one message on one subscription. Opaque to clients.
struct AckRef {
  int64_t subscription_id = 0;
  int64_t message_id = 0;
  int attempt = 0;
};

std::string EncodeAckId(AckRef const& ref);
// A message id as Ferry assigns them (a positive decimal number), or nullopt.
std::optional<int64_t> DecodeMessageId(std::string_view id);  // "s-m-a" in decimal
std::optional<AckRef> DecodeAckId(std::string_view ack_id);
// All of them, or INVALID_ARGUMENT naming the first that is malformed.
StatusOr<std::vector<AckRef>> DecodeAckIds(std::vector<std::string> const& ack_ids);

}  // namespace ferry
