#pragma once

#include <memory>
#include <string>

#include "ferry/status.h"

namespace ferry {

struct HttpResult {
  int status = 0;
  std::string body;
};

// A blocking HTTP/1.1 client for the CLI: one keep-alive connection to one endpoint. Not thread-safe.
class HttpClient {
 public:
  // endpoint: "http://host:port", "https://host:port" (TLS, verified against the system CA store or SSL_CERT_FILE)
  // or "host:port". A non-empty `token` goes with every request as a bearer token.
  static StatusOr<std::unique_ptr<HttpClient>> Make(std::string const& endpoint, std::string token = "");
  virtual ~HttpClient() = default;
  // UNAVAILABLE when the daemon cannot be reached.
  virtual StatusOr<HttpResult> Send(std::string const& method, std::string const& target, std::string const& body,
                                    std::string const& content_type = "application/json") = 0;
};

}  // namespace ferry
