// Sentry DSNs, as a deploy file or --sentry-dsn gives them: parsed, and if accepted, parts that cannot forge a
// request line or a header (the envelope path and X-Sentry-Auth are built from them).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/sentry_dsn.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string text(reinterpret_cast<char const*>(data), size);
  auto dsn = ferry::ParseSentryDsn(text);
  if (!dsn.ok()) return 0;
  int port = std::atoi(dsn->port.c_str());
  if (dsn->host.empty() || dsn->public_key.empty() || dsn->project_id.empty() || port < 1 || port > 65535) {
    std::abort();
  }
  for (std::string const& part : {dsn->EnvelopePath(), dsn->AuthHeader(), dsn->host}) {
    for (char c : part) {
      if (static_cast<unsigned char>(c) < ' ' || static_cast<unsigned char>(c) >= 0x7f) std::abort();
    }
  }
  for (char c : dsn->EnvelopePath()) {
    if (c == ' ') std::abort();
  }
  return 0;
}
