#pragma once

#include <string>

namespace ferry {

/// Metadata of one invocation, as Cloud Functions' background-function context carries it.
struct Context {
  std::string event_id;
  /// RFC 3339 time of the event.
  std::string timestamp;
  /// e.g. "google.pubsub.topic.publish".
  std::string event_type;
  /// The resource that emitted the event, e.g. "projects/p/topics/bar".
  std::string resource;
  /// Ferry's id for this execution; every log line of the invocation carries it.
  std::string execution_id;

  /// A one-line JSON rendering, for logs.
  [[nodiscard]] std::string ToString() const;
};

}  // namespace ferry
