#include "model/resources.h"

#include "model/filter.h"

#include <algorithm>
#include <cctype>

namespace ferry {

char const* CollectionName(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::kTopic: return "topics";
    case ResourceKind::kSubscription: return "subscriptions";
    case ResourceKind::kSnapshot: return "snapshots";
  }
  return "";
}

std::string MakeResourceName(std::string_view project, ResourceKind kind, std::string_view id) {
  std::string name = "projects/";
  name += project;
  name += '/';
  name += CollectionName(kind);
  name += '/';
  name += id;
  return name;
}

bool IsValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool IsValidResourceId(std::string_view id) {
  if (id.size() < 3 || id.size() > 255) return false;
  if (!std::isalpha(static_cast<unsigned char>(id[0]))) return false;
  if (id.substr(0, 4) == "goog") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '~' ||
           c == '+' || c == '%';
  });
}

bool IsValidProjectId(std::string_view project) {
  if (project.empty() || project.size() > 100) return false;
  if (!std::isalnum(static_cast<unsigned char>(project.front()))) return false;
  return std::all_of(project.begin(), project.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
  });
}

bool IsValidRegionId(std::string_view region) {
  if (region.empty() || region.size() > 63) return false;
  return std::all_of(region.begin(), region.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

StatusOr<ParsedName> ParseResourceName(std::string_view name, ResourceKind kind) {
  auto invalid = [&] {
    return InvalidArgumentError(std::string("Invalid [") + CollectionName(kind) + "] name: (name=" +
                                std::string(name) + ")");
  };
  constexpr std::string_view kPrefix = "projects/";
  if (name.substr(0, kPrefix.size()) != kPrefix) return invalid();
  std::string_view rest = name.substr(kPrefix.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return invalid();
  std::string_view project = rest.substr(0, slash);
  if (!IsValidProjectId(project)) return invalid();
  rest = rest.substr(slash + 1);
  std::string_view collection = CollectionName(kind);
  if (rest.substr(0, collection.size()) != collection || rest.size() <= collection.size() ||
      rest[collection.size()] != '/') {
    return invalid();
  }
  std::string_view id = rest.substr(collection.size() + 1);
  if (!IsValidResourceId(id)) return invalid();
  return ParsedName{std::string(project), std::string(id)};
}

int64_t RetryDelayMillis(RetryPolicy const& policy, int attempts) {
  int64_t delay = policy.minimum_backoff_ms;
  for (int i = 1; i < attempts && delay < policy.maximum_backoff_ms; ++i) delay *= 2;
  if (delay == 0) return 0;
  return std::min(delay, policy.maximum_backoff_ms);
}

Status ValidateMessage(PubsubMessage const& message) {
  if (message.data.empty() && message.attributes.empty()) {
    return InvalidArgumentError("Some messages are empty: a message needs data or at least one attribute");
  }
  if (message.attributes.size() > kMaxAttributes) {
    return InvalidArgumentError("Too many attributes: at most 100 per message");
  }
  for (auto const& [k, v] : message.attributes) {
    if (k.empty() || k.size() > kMaxAttributeKeyBytes) {
      return InvalidArgumentError("Invalid attribute key \"" + k.substr(0, 64) + "\": 1 to 256 bytes");
    }
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) {
      return InvalidArgumentError("Attribute keys and values must be valid UTF-8");
    }
    if (v.size() > kMaxAttributeValueBytes) {
      return InvalidArgumentError("Attribute value for key \"" + k + "\" is longer than 1024 bytes");
    }
  }
  if (message.ordering_key.size() > kMaxOrderingKeyBytes) {
    return InvalidArgumentError("Ordering key is longer than 1024 bytes");
  }
  if (!IsValidUtf8(message.ordering_key)) return InvalidArgumentError("Ordering key must be valid UTF-8");
  // Stored and compared as text, which PostgreSQL cannot hold a NUL in: refused alike on every backend.
  if (message.ordering_key.find('\0') != std::string::npos) {
    return InvalidArgumentError("Ordering key must not contain a NUL character");
  }
  return OkStatus();
}

Status ValidateLabels(Attributes const& labels) {
  if (labels.size() > 64) return InvalidArgumentError("At most 64 labels are allowed");
  for (auto const& [k, v] : labels) {
    if (k.empty() || k.size() > 63 || v.size() > 63 || !IsValidUtf8(k) || !IsValidUtf8(v)) {
      return InvalidArgumentError("Invalid label: keys are 1 to 63 and values up to 63 bytes of UTF-8");
    }
  }
  return OkStatus();
}

Status NormalizeTopic(Topic& topic) {
  if (auto parsed = ParseResourceName(topic.name, ResourceKind::kTopic); !parsed.ok()) return parsed.status();
  if (Status st = ValidateLabels(topic.labels); !st.ok()) return st;
  if (topic.message_retention_ms &&
      (*topic.message_retention_ms < kMinRetentionMillis || *topic.message_retention_ms > kMaxRetentionMillis)) {
    return InvalidArgumentError("message_retention_duration must be between 10 minutes and 31 days");
  }
  return OkStatus();
}

Status NormalizeSubscription(Subscription& sub) {
  if (auto parsed = ParseResourceName(sub.name, ResourceKind::kSubscription); !parsed.ok()) {
    return parsed.status();
  }
  if (Status st = ValidateLabels(sub.labels); !st.ok()) return st;
  if (!IsValidUtf8(sub.filter) || !IsValidUtf8(sub.push_config.push_endpoint)) {
    return InvalidArgumentError("Filters and push endpoints must be valid UTF-8");
  }
  if (sub.filter.size() > 256) return InvalidArgumentError("filter is longer than 256 bytes");
  if (auto filter = Filter::Parse(sub.filter); !filter.ok()) return filter.status();
  if (sub.ack_deadline_seconds == 0) sub.ack_deadline_seconds = kDefaultAckDeadlineSeconds;
  if (sub.ack_deadline_seconds < kMinAckDeadlineSeconds || sub.ack_deadline_seconds > kMaxAckDeadlineSeconds) {
    return InvalidArgumentError("ack_deadline_secs out of bounds");
  }
  if (sub.message_retention_ms == 0) sub.message_retention_ms = kDefaultRetentionMillis;
  if (sub.message_retention_ms < kMinRetentionMillis || sub.message_retention_ms > kMaxRetentionMillis) {
    return InvalidArgumentError("message_retention_duration must be between 10 minutes and 31 days");
  }
  if (sub.dead_letter_policy) {
    auto& dlp = *sub.dead_letter_policy;
    if (dlp.dead_letter_topic.empty()) {
      // An empty policy is how clients clear it.
      sub.dead_letter_policy.reset();
    } else {
      if (auto parsed = ParseResourceName(dlp.dead_letter_topic, ResourceKind::kTopic); !parsed.ok()) {
        return InvalidArgumentError("Invalid dead letter topic name: " + dlp.dead_letter_topic);
      }
      if (dlp.max_delivery_attempts == 0) dlp.max_delivery_attempts = kDefaultMaxDeliveryAttempts;
      if (dlp.max_delivery_attempts < kMinMaxDeliveryAttempts ||
          dlp.max_delivery_attempts > kMaxMaxDeliveryAttempts) {
        return InvalidArgumentError("max_delivery_attempts must be between 5 and 100");
      }
    }
  }
  if (sub.retry_policy) {
    auto const& rp = *sub.retry_policy;
    if (rp.minimum_backoff_ms < 0 || rp.minimum_backoff_ms > kMaxBackoffMillis || rp.maximum_backoff_ms < 0 ||
        rp.maximum_backoff_ms > kMaxBackoffMillis) {
      return InvalidArgumentError("retry policy backoffs must be between 0 and 600 seconds");
    }
    if (rp.minimum_backoff_ms > rp.maximum_backoff_ms) {
      return InvalidArgumentError("retry policy minimum_backoff must not exceed maximum_backoff");
    }
  }
  if (sub.filter.size() > 256) return InvalidArgumentError("filter is longer than 256 bytes");
  return OkStatus();
}

}  // namespace ferry
