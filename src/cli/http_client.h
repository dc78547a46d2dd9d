#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/status.h"

namespace ferry {

struct HttpResult {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased

  [[nodiscard]] std::string Header(std::string_view lowercase_name) const {
    for (auto const& [k, v] : headers) {
      if (k == lowercase_name) return v;
    }
    return {};
  }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// A blocking HTTP/1.1 client for the CLI: one keep-alive connection to one endpoint. Not thread-safe.
class HttpClient {
 public:
  // endpoint: "http://host:port", "https://host:port" (TLS, verified against the system CA store or SSL_CERT_FILE)
  // or "host:port". A non-empty `token` goes with every request as a bearer token.
  static StatusOr<std::unique_ptr<HttpClient>> Make(std::string const& endpoint, std::string token = "");
  virtual ~HttpClient() = default;
  // UNAVAILABLE when the daemon cannot be reached.
  virtual StatusOr<HttpResult> Send(std::string const& method, std::string const& target, std::string const& body,
                                    std::string const& content_type = "application/json",
                                    HttpHeaders const& headers = {}) = 0;
};

// One request on a fresh connection to `endpoint` (as HttpClient::Make takes it), the whole exchange (resolve,
// connect, TLS, write, read) within `timeout`: DEADLINE_EXCEEDED past it, UNAVAILABLE when it fails. For the
// daemon's own outbound reports, which must never wait without end. Thread-safe (each call has its own state).
StatusOr<HttpResult> SendOnce(std::string const& endpoint, std::string const& method, std::string const& target,
                              std::string const& body, std::string const& content_type, HttpHeaders const& headers,
                              std::chrono::milliseconds timeout);

}  // namespace ferry
