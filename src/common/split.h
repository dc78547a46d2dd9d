#pragma once

#include <string_view>
#include <vector>

namespace ferry {

// The pieces of `text` between `sep`s, empty ones included: "a,,b" -> {"a", "", "b"}. They view into `text`.
inline std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    auto pos = text.find(sep);
    out.push_back(text.substr(0, pos));
    if (pos == std::string_view::npos) break;
    text.remove_prefix(pos + 1);
  }
  return out;
}

}  // namespace ferry
