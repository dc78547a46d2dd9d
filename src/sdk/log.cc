#include "ferry/log.h"

#include <cstdio>
#include <mutex>

#include "common/json_escape.h"
#include "sdk/invocation.h"

namespace ferry::log {
namespace {

std::mutex& OutputMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

void Write(std::string_view severity, std::string_view message) {
  // One JSON object a line, as Cloud Functions' structured logging reads stdout.
  std::string line = "{\"severity\":\"";
  line += severity;
  line += "\",\"message\":";
  AppendJsonString(line, message);
  if (auto const* id = sdk::CurrentExecutionId(); id != nullptr && !id->empty()) {
    line += ",\"execution_id\":";
    AppendJsonString(line, *id);
  }
  line += "}\n";
  std::lock_guard lock(OutputMutex());
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void Info(std::string_view message) { Write("INFO", message); }
void Warning(std::string_view message) { Write("WARNING", message); }
void Error(std::string_view message) { Write("ERROR", message); }

}  // namespace ferry::log
