// Lines a function instance writes to stdout and stderr: structured (a JSON object, as Cloud Logging reads them)
// or plain. Never a crash; every line gives a message (the line itself when it is not structured).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "functions/instance_line.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string line(reinterpret_cast<char const*>(data), size);
  ferry::InstanceLine out = ferry::ParseInstanceLine(size % 2 == 0, line);
  if (out.message.empty() && !line.empty()) std::abort();
  return 0;
}
