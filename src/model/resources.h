#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/utf8.h"
#include "ferry/status.h"

namespace ferry {

using Attributes = std::map<std::string, std::string>;

// The kinds of named resource, with their collection names as they appear in paths.
enum class ResourceKind { kTopic, kSubscription, kSnapshot };
char const* CollectionName(ResourceKind kind);  // "topics", "subscriptions", "snapshots"

// "projects/{project}/{collection}/{id}".
std::string MakeResourceName(std::string_view project, ResourceKind kind, std::string_view id);

// Splits and validates a full name. INVALID_ARGUMENT with Pub/Sub's own message on a wrong shape or id.
struct ParsedName {
  std::string project;
  std::string id;
};
StatusOr<ParsedName> ParseResourceName(std::string_view name, ResourceKind kind);

// Cloud Storage's bucket name rule, as Ferry takes it: 3 to 63 lowercase letters, digits, '-', '_' and '.',
// beginning and ending with a letter or digit.
bool IsValidBucketName(std::string_view name);

// A project id as Ferry takes it: Google's characters (lowercase letters, digits, '-'; '.' and ':' for
// domain-scoped ids), 1 to 100 of them, beginning with a letter or digit. Google's own rule is stricter (6 to 30,
// a letter first), but Google's emulator accepts any project, and clients written against it use ids like "p".
bool IsValidProjectId(std::string_view project);
// A region (location) id: 1 to 63 lowercase letters, digits and '-', as "us-central1".
bool IsValidRegionId(std::string_view region);

// Google's label rule, loosely: at most 64, keys 1 to 63 bytes and values up to 63, valid UTF-8.
Status ValidateLabels(Attributes const& labels);


// Pub/Sub's id rule: 3 to 255 characters, a letter first, then letters, digits and "-_.~+%", not "goog...".
bool IsValidResourceId(std::string_view id);

// Limits as Google's (https://cloud.google.com/pubsub/quotas#resource_limits).
inline constexpr int kMaxMessagesPerPublish = 1000;
inline constexpr std::size_t kMaxPublishRequestBytes = 10 * 1000 * 1000;
inline constexpr std::size_t kMaxAttributes = 100;
inline constexpr std::size_t kMaxAttributeKeyBytes = 256;
inline constexpr std::size_t kMaxAttributeValueBytes = 1024;
inline constexpr std::size_t kMaxOrderingKeyBytes = 1024;
inline constexpr int kMaxPullMessages = 1000;
inline constexpr int kDefaultAckDeadlineSeconds = 10;
inline constexpr int kMinAckDeadlineSeconds = 10;
inline constexpr int kMaxAckDeadlineSeconds = 600;
inline constexpr int64_t kDefaultRetentionMillis = 7LL * 24 * 3600 * 1000;
inline constexpr int64_t kMinRetentionMillis = 10LL * 60 * 1000;
inline constexpr int64_t kMaxRetentionMillis = 31LL * 24 * 3600 * 1000;
inline constexpr int kDefaultMaxDeliveryAttempts = 5;
inline constexpr int kMinMaxDeliveryAttempts = 5;
inline constexpr int kMaxMaxDeliveryAttempts = 100;
inline constexpr int64_t kDefaultMinimumBackoffMillis = 10'000;
inline constexpr int64_t kDefaultMaximumBackoffMillis = 600'000;
inline constexpr int64_t kMaxBackoffMillis = 600'000;

struct Topic {
  std::string name;  // projects/{p}/topics/{t}
  Attributes labels;
  std::optional<int64_t> message_retention_ms;  // unset: the topic keeps no acked messages
};

struct PushConfig {
  std::string push_endpoint;  // empty: a pull subscription
  Attributes attributes;
  bool no_wrapper = false;
  bool write_metadata = false;
};

struct DeadLetterPolicy {
  std::string dead_letter_topic;  // a full topic name
  int max_delivery_attempts = kDefaultMaxDeliveryAttempts;
};

struct RetryPolicy {
  int64_t minimum_backoff_ms = kDefaultMinimumBackoffMillis;
  int64_t maximum_backoff_ms = kDefaultMaximumBackoffMillis;
};

struct Subscription {
  std::string name;   // projects/{p}/subscriptions/{s}
  std::string topic;  // a full topic name, or "_deleted-topic_" once its topic is gone
  PushConfig push_config;
  int ack_deadline_seconds = kDefaultAckDeadlineSeconds;
  bool retain_acked_messages = false;
  int64_t message_retention_ms = kDefaultRetentionMillis;
  Attributes labels;
  bool enable_message_ordering = false;
  std::optional<int64_t> expiration_ttl_ms;
  std::string filter;
  std::optional<DeadLetterPolicy> dead_letter_policy;
  std::optional<RetryPolicy> retry_policy;
  bool detached = false;
  bool enable_exactly_once_delivery = false;
};

inline constexpr char kDeletedTopic[] = "_deleted-topic_";

// A subscription's acknowledgement state at a moment, to seek back to: the messages it had not acknowledged then,
// plus every later one of its topic.
struct Snapshot {
  std::string name;   // projects/{p}/snapshots/{s}
  std::string topic;  // the topic of the subscription it was taken from
  int64_t expire_time_ms = 0;
  Attributes labels;
};
// Pub/Sub keeps a snapshot until its oldest message is 7 days old.
inline constexpr int64_t kSnapshotLifetimeMillis = 7LL * 24 * 3600 * 1000;

struct PubsubMessage {
  std::string data;
  Attributes attributes;
  std::string message_id;
  int64_t publish_time_ms = 0;
  std::string ordering_key;
};

struct ReceivedMessage {
  std::string ack_id;
  PubsubMessage message;
  int delivery_attempt = 0;  // as the API shows it: 0 without a dead-letter policy (Google omits the field)
  int attempt = 0;           // always: 1 on the first delivery (functions' events carry it)
};

// The delay before redelivering a message that failed its `attempts`-th delivery: the minimum backoff doubled
// for each further attempt, capped at the maximum.
int64_t RetryDelayMillis(RetryPolicy const& policy, int attempts);

// Checks a message against Pub/Sub's limits: data or an attribute, attribute counts and sizes, ordering key.
Status ValidateMessage(PubsubMessage const& message);

// Fills defaults and checks ranges of a subscription as given by a client (not the existence of topics).
Status NormalizeSubscription(Subscription& sub);
Status NormalizeTopic(Topic& topic);

}  // namespace ferry
