#pragma once

#include <map>
#include <string>

#include "ferry/json.h"

namespace ferry {

/// What triggered a background function. For a Pub/Sub trigger: the message.
///
/// @par Example
/// @code
///   void bar(ferry::Event const& event, ferry::Context const& context) {
///     if (event.attributes().count("tenant")) { ... }
///     ferry::Json body = event.data_json();   // the message data, parsed
///   }
/// @endcode
struct Event {
  /// The message data as bytes (base64-decoded).
  std::string data;
  /// The message attributes.
  std::map<std::string, std::string> attributes;
  std::string message_id;
  /// RFC 3339, e.g. "2026-11-28T02:46:47.381Z".
  std::string publish_time;
  std::string ordering_key;
  /// 1 on the first delivery, 2 on the first retry, ...
  int delivery_attempt = 1;
  /// The event's `data` member exactly as Ferry sent it (JSON text).
  std::string raw;

  /// `data` parsed as JSON; a null Json when it is not JSON.
  [[nodiscard]] Json data_json() const { return Json::Parse(data); }
  /// A one-line JSON rendering, for logs.
  [[nodiscard]] std::string ToString() const;
};

}  // namespace ferry
