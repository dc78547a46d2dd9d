#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// "http://host[:port][/path]", split.
struct PushEndpoint {
  std::string host, port, target;
};
StatusOr<PushEndpoint> ParsePushEndpoint(std::string const& url);

// Where push subscriptions may send. A push endpoint is a URL that anyone who may create a subscription chooses,
// and Ferry then POSTs to it with message data as the body: left open, it reaches what only Ferry's machine can
// reach (a cloud metadata address, an internal admin port, Ferry's own admin API). So by default only public
// addresses are allowed; loopback, link-local, private, shared (CGNAT), multicast and unspecified ones, and this
// machine's own addresses, need an entry in --push-allow. The host is resolved once per delivery, and the address
// checked is the address connected to, so a DNS answer that changes between check and use gains nothing.
class PushPolicy {
 public:
  // `allow`: CIDR blocks or single addresses ("127.0.0.1", "10.0.0.0/8", "::1/128").
  static StatusOr<std::unique_ptr<PushPolicy>> Make(std::vector<std::string> const& allow);
  // Ferry's own port, once bound; this machine's addresses on it are refused even when allowed.
  void set_self_port(uint16_t port) { self_port_ = port; }

  // For creating or changing a subscription: the URL's shape (http:// only) and, resolving its host now, that
  // every address it names is allowed. INVALID_ARGUMENT naming the reason otherwise.
  [[nodiscard]] Status CheckEndpoint(std::string const& url) const;

  // For a delivery: the allowed addresses of the endpoint's host, in the resolver's order; an error when none is.
  [[nodiscard]] StatusOr<std::vector<sockaddr_storage>> Resolve(PushEndpoint const& endpoint) const;

  // Whether one address (with its port) may be pushed to. Public for tests.
  [[nodiscard]] bool Allowed(sockaddr const& address) const;

 private:
  struct Block {
    int family = AF_INET;
    unsigned char bytes[16] = {};
    int prefix = 0;
  };
  std::vector<Block> allow_;
  std::atomic<uint16_t> self_port_{0};
};

}  // namespace ferry
