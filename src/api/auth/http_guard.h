#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/auth/tokens.h"
#include "api/http_server.h"

namespace ferry {

// Who may make a request to one of Ferry's own HTTP APIs, decided from its method and path alone.
struct Access {
  enum class Kind {
    kPublic,     // /healthz: liveness probes carry no token
    kAnyToken,   // /ferry/v1/info: any configured token
    kRole,       // `role`
    kDelegated,  // HTTP functions and webhooks: the gateway decides per function or topic
  };
  Kind kind = Kind::kRole;
  Role role = Role::kAdmin;
  // A browser can send a cross-site POST as a "simple request" (text/plain, no preflight). Requiring
  // application/json on mutating calls to the JSON APIs makes every such request need a preflight, which Ferry
  // never grants.
  bool json_body = false;
};
Access AccessFor(HttpRequest const& request);

struct HttpGuardOptions {
  TokenAuthenticator const* tokens = nullptr;
  // The address the server is bound to; a Host naming it (or a loopback name) is always accepted.
  std::string bound_host;
  // Further names clients may use in Host and Origin (--allow-host), e.g. a DNS name for the machine.
  std::vector<std::string> allowed_hosts;
};

// The checks every request to Ferry's own APIs passes before a handler sees it: DNS rebinding (the Host must name
// this server), cross-site browser requests (a foreign Origin, or a mutating call that is not JSON), and the role
// its path needs. Stateless and thread-safe.
class HttpGuard {
 public:
  explicit HttpGuard(HttpGuardOptions options) : options_(std::move(options)) {}

  // An error response when the request is refused; nullopt when it may go on.
  [[nodiscard]] std::optional<HttpResponse> Refusal(HttpRequest const& request) const;
  // Only the browser checks (Host and Origin), for the gateway's paths, which decide roles themselves.
  [[nodiscard]] std::optional<HttpResponse> BrowserRefusal(HttpRequest const& request) const;
  // Whether a Host header value names this server: an address literal, localhost, the bound host or an allowed
  // name. (A name an attacker controls is none of these.)
  [[nodiscard]] bool HostAllowed(std::string_view host_and_port) const;

 private:
  HttpGuardOptions options_;
};

}  // namespace ferry
