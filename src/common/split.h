#pragma once

#include <string>
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

// Not of a temporary string: the views would outlive it (for (auto m : Split(req.Query("x"), ',')) reads freed
// memory once the value is longer than the small-string buffer). Name the string first.
std::vector<std::string_view> Split(std::string&& text, char sep) = delete;

}  // namespace ferry
