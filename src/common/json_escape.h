#pragma once

#include <string>
#include <string_view>

namespace ferry {

// Appends `s` as a JSON string literal, quotes included. Bytes >= 0x80 pass through (the input is UTF-8).
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace ferry
