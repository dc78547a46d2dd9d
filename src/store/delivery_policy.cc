#include "store/delivery_policy.h"

#include <algorithm>

#include "common/status_macros.h"
#include "common/time_util.h"

namespace ferry {
namespace {

// At most `max` bytes of `text`, cut at a character boundary.
std::string TruncateUtf8(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

}  // namespace

bool Exhausted(Subscription const& sub, int attempts) {
  return sub.dead_letter_policy && attempts >= sub.dead_letter_policy->max_delivery_attempts;
}

AfterFailure OnFailedAttempt(Subscription const& sub, int attempts, int64_t failed_at_ms) {
  AfterFailure after;
  after.dead_letter = Exhausted(sub, attempts);
  after.retry_at_ms = failed_at_ms + (sub.retry_policy ? RetryDelayMillis(*sub.retry_policy, attempts) : 0);
  return after;
}

StatusOr<PubsubMessage> DeadLetterCopy(PubsubMessage message, Subscription const& sub, int attempts,
                                       std::optional<std::string> const& last_error) {
  FERRY_ASSIGN_OR_RETURN(auto parsed, ParseResourceName(sub.name, ResourceKind::kSubscription));
  message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] = std::to_string(attempts);
  message.attributes["CloudPubSubDeadLetterSourceSubscription"] = parsed.id;
  message.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"] = parsed.project;
  message.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"] = FormatRfc3339(message.publish_time_ms);
  if (last_error) message.attributes[kLastErrorAttribute] = TruncateUtf8(*last_error, kMaxAttributeValueBytes);
  if (!message.message_id.empty()) message.attributes[kSourceMessageIdAttribute] = message.message_id;
  return message;
}

PubsubMessage RedriveCopy(PubsubMessage message) {
  auto& attributes = message.attributes;
  int redrives = 0;
  if (auto it = attributes.find(kRedriveCountAttribute); it != attributes.end()) {
    try {
      redrives = std::max(0, std::stoi(it->second));
    } catch (...) {  // someone else's value: counted afresh
    }
  }
  std::erase_if(attributes, [](auto const& kv) {
    return kv.first.rfind("CloudPubSubDeadLetterSource", 0) == 0 || kv.first == kLastErrorAttribute ||
           kv.first == kSourceMessageIdAttribute;
  });
  attributes[kRedriveCountAttribute] = std::to_string(redrives + 1);
  return message;
}

}  // namespace ferry
