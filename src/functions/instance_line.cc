#include "functions/instance_line.h"

#include <nlohmann/json.hpp>

#include "common/json_depth.h"

namespace ferry {

InstanceLine ParseInstanceLine(bool is_stderr, std::string const& line) {
  InstanceLine out;
  out.is_stderr = is_stderr;
  if (!line.empty() && line.front() == '{' && JsonNestingWithin(line)) {  // a deeper one stays plain text
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) {
      auto text = [&](char const* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      out.execution_id = text("execution_id");
      out.severity = text("severity");
      out.message = text("message");
    }
  }
  if (out.message.empty()) out.message = line;
  return out;
}

}  // namespace ferry
