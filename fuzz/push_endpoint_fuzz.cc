// Push endpoints, as a subscription's creator writes them: parsed, and if accepted, a host and a port in range.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "push/push_policy.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string url(reinterpret_cast<char const*>(data), size);
  auto endpoint = ferry::ParsePushEndpoint(url);
  if (!endpoint.ok()) return 0;
  int port = std::atoi(endpoint->port.c_str());
  if (endpoint->host.empty() || port < 1 || port > 65535 || endpoint->target.empty()) std::abort();
  for (char c : endpoint->target) {
    if (static_cast<unsigned char>(c) <= ' ') std::abort();  // no request line or header can be forged
  }
  return 0;
}
