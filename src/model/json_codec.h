#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

// Google's JSON mapping of the google.pubsub.v1 messages: camelCase names (snake_case accepted on input, as
// protobuf's parser does), Durations as "600s", bytes as base64, defaults written out as the service does.
// Parsing is strict: an unknown field or a wrong type is INVALID_ARGUMENT naming the field.

using Json = nlohmann::ordered_json;

Json TopicToJson(Topic const& topic);
StatusOr<Topic> TopicFromJson(Json const& json, std::string_view where = "topic");

Json SubscriptionToJson(Subscription const& sub);
StatusOr<Subscription> SubscriptionFromJson(Json const& json, std::string_view where = "subscription");

Json MessageToJson(PubsubMessage const& message);
StatusOr<PubsubMessage> MessageFromJson(Json const& json, std::string_view where = "messages");

Json ReceivedMessageToJson(ReceivedMessage const& received);

// The PullResponse body for these messages, written straight to text: the hot path of every pull, where building
// a JSON tree first cost more than the store's work.
std::string PullResponseJson(std::vector<ReceivedMessage> const& received);

// JSON text of a document whose strings may hold bytes that are not UTF-8 (they become U+FFFD): for whatever
// Ferry writes, so no odd byte that got in can make the writing throw.
std::string SafeDump(nlohmann::json const& json);
std::string SafeDump(nlohmann::ordered_json const& json);

// Parses a JSON request body: INVALID_ARGUMENT (never an exception) for text that is not JSON, not UTF-8, or
// nested deeper than kMaxJsonDepth; the message never quotes the body.
StatusOr<nlohmann::json> ParseJsonText(std::string_view text);
StatusOr<Json> ParseOrderedJsonText(std::string_view text);

// "ack_deadline_seconds" -> "ackDeadlineSeconds"; camelCase passes through.
std::string ToLowerCamel(std::string_view name);

}  // namespace ferry
