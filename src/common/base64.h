#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry {

// Standard base64 with padding, as protobuf's JSON mapping writes `bytes`.
std::string Base64Encode(std::string_view bytes);
// Accepts the standard and the URL-safe alphabet, padded or not (protobuf's JSON parser does).
// Returns nullopt on any other character or a malformed length.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace ferry
