#pragma once

#include <string>

namespace ferry {

// One line an instance wrote. A structured line (a JSON object with "message", as Cloud Logging reads
// stdout) gives its message, severity and execution id; a plain line is its own message, tied to the execution
// running when the instance serves one at a time.
struct InstanceLine {
  std::string execution_id;  // "" when unknown
  bool is_stderr = false;
  std::string severity;      // from a structured line, else ""
  std::string message;
};

// Reads one line as above. Anything that is not a JSON object with a string "message" (nested deeper than the
// JSON limit, malformed, or plain text) is a plain line, its message the line itself. Never throws.
InstanceLine ParseInstanceLine(bool is_stderr, std::string const& line);

}  // namespace ferry
