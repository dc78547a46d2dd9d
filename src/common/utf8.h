#pragma once

#include <string>
#include <string_view>

namespace ferry {

// True when `text` is valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool IsValidUtf8(std::string_view text);

// `text` with each byte that does not begin a valid sequence replaced by U+FFFD, as a reader of untrusted text
// (a function's output) keeps it storable and printable. Valid text comes back unchanged.
std::string ToValidUtf8(std::string_view text);

}  // namespace ferry
