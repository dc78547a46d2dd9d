#include "push/push_policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>

#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <vector>

namespace ferry {
namespace {

// The 16 bytes of an address: IPv4 as an IPv4-mapped IPv6 address, so one set of rules covers both.
struct Address {
  unsigned char bytes[16] = {};
  uint16_t port = 0;
};

bool ToAddress(sockaddr const& sa, Address& out) {
  if (sa.sa_family == AF_INET) {
    auto const& in = reinterpret_cast<sockaddr_in const&>(sa);
    out.bytes[10] = out.bytes[11] = 0xff;
    std::memcpy(out.bytes + 12, &in.sin_addr, 4);
    out.port = ntohs(in.sin_port);
    return true;
  }
  if (sa.sa_family == AF_INET6) {
    auto const& in6 = reinterpret_cast<sockaddr_in6 const&>(sa);
    std::memcpy(out.bytes, &in6.sin6_addr, 16);
    out.port = ntohs(in6.sin6_port);
    return true;
  }
  return false;
}

bool InPrefix(unsigned char const* a, unsigned char const* block, int prefix) {
  for (int bit = 0; bit < prefix; ++bit) {
    int byte = bit / 8, shift = 7 - bit % 8;
    if (((a[byte] >> shift) & 1) != ((block[byte] >> shift) & 1)) return false;
  }
  return true;
}

bool IsV4Mapped(unsigned char const* a) {
  static unsigned char const kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, kMapped, 12) == 0;
}

// Addresses only the machine or its networks reach: loopback, unspecified, link-local (cloud metadata lives at
// 169.254.169.254), private, shared (100.64/10), benchmarking, multicast and reserved ranges, in both families.
bool IsInternal(unsigned char const* a) {
  if (IsV4Mapped(a)) {
    unsigned char const* v4 = a + 12;
    auto in = [&](unsigned char b0, unsigned char b1, int prefix) {
      unsigned char block[4] = {b0, b1, 0, 0};
      return InPrefix(v4, block, prefix);
    };
    return in(0, 0, 8) || in(10, 0, 8) || in(127, 0, 8) || in(169, 254, 16) || in(172, 16, 12) ||
           in(192, 168, 16) || in(100, 64, 10) || in(198, 18, 15) || in(224, 0, 4) || in(240, 0, 4);
  }
  static unsigned char const kZero[16] = {};
  unsigned char loopback[16] = {};
  loopback[15] = 1;
  if (std::memcmp(a, kZero, 16) == 0 || std::memcmp(a, loopback, 16) == 0) return true;
  if ((a[0] & 0xfe) == 0xfc) return true;                   // fc00::/7 unique local
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return true;   // fe80::/10 link-local
  if (a[0] == 0xff) return true;                            // multicast
  return false;
}

// Loopback and unspecified addresses, which always reach this machine.
bool IsLocalhost(unsigned char const* a) {
  static unsigned char const kZero[16] = {};
  unsigned char loopback[16] = {};
  loopback[15] = 1;
  if (std::memcmp(a, kZero, 16) == 0 || std::memcmp(a, loopback, 16) == 0) return true;
  return IsV4Mapped(a) && (a[12] == 127 || (a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 0));
}

// The addresses of this machine's interfaces, read again at most every 10 s (a push looks them up per delivery).
std::vector<std::array<unsigned char, 16>> InterfaceAddresses() {
  static std::mutex mu;
  static std::vector<std::array<unsigned char, 16>> cached;
  static std::chrono::steady_clock::time_point read_at;
  std::lock_guard lock(mu);
  auto now = std::chrono::steady_clock::now();
  if (read_at.time_since_epoch().count() != 0 && now - read_at < std::chrono::seconds(10)) return cached;
  cached.clear();
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      Address local;
      if (i->ifa_addr == nullptr || !ToAddress(*i->ifa_addr, local)) continue;
      std::array<unsigned char, 16> bytes{};
      std::memcpy(bytes.data(), local.bytes, 16);
      cached.push_back(bytes);
    }
    freeifaddrs(list);
  }
  read_at = now;
  return cached;
}

// This machine: localhost, or an address of one of its interfaces.
bool IsOwnAddress(unsigned char const* a) {
  if (IsLocalhost(a)) return true;
  for (auto const& local : InterfaceAddresses()) {
    if (std::memcmp(local.data(), a, 16) == 0) return true;
  }
  return false;
}

}  // namespace

StatusOr<PushEndpoint> ParsePushEndpoint(std::string const& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.rfind("https://", 0) == 0) {
    return InvalidArgumentError("Ferry pushes over http:// only; for " + url +
                                ", push to a TLS proxy on your network over http://");
  }
  if (url.rfind(kHttp, 0) != 0) return InvalidArgumentError("A push endpoint must be an http:// URL");
  std::string rest = url.substr(kHttp.size());
  PushEndpoint e;
  auto slash = rest.find('/');
  e.target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string authority = rest.substr(0, slash);
  if (authority.find('@') != std::string::npos) return InvalidArgumentError("A push endpoint may not carry a user");
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return InvalidArgumentError("Bad IPv6 address in push endpoint");
    e.host = authority.substr(1, close - 1);
    e.port = close + 1 < authority.size() && authority[close + 1] == ':' ? authority.substr(close + 2) : "80";
  } else {
    auto colon = authority.rfind(':');
    e.host = authority.substr(0, colon);
    e.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  }
  if (e.host.empty()) return InvalidArgumentError("No host in push endpoint");
  if (e.port.empty() || e.port.size() > 5 || e.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(e.port) == 0 || std::stoi(e.port) > 65535) {
    return InvalidArgumentError("Bad port in push endpoint");
  }
  for (char c : e.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return InvalidArgumentError("Bad path in push endpoint");
  }
  return e;
}

StatusOr<std::unique_ptr<PushPolicy>> PushPolicy::Make(std::vector<std::string> const& allow) {
  auto policy = std::make_unique<PushPolicy>();
  for (auto const& entry : allow) {
    auto slash = entry.find('/');
    std::string ip = entry.substr(0, slash);
    Block b;
    in_addr v4{};
    in6_addr v6{};
    int max = 0;
    if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
      b.bytes[10] = b.bytes[11] = 0xff;
      std::memcpy(b.bytes + 12, &v4, 4);
      max = 32;
    } else if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
      std::memcpy(b.bytes, &v6, 16);
      max = 128;
    } else {
      return InvalidArgumentError("--push-allow: \"" + entry + "\" is not an address or CIDR block");
    }
    int prefix = max;
    if (slash != std::string::npos) {
      std::string bits = entry.substr(slash + 1);
      if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(bits) > max) {
        return InvalidArgumentError("--push-allow: bad prefix length in \"" + entry + "\"");
      }
      prefix = std::stoi(bits);
    }
    b.prefix = prefix + (max == 32 ? 96 : 0);
    policy->allow_.push_back(b);
  }
  return policy;
}

bool PushPolicy::Allowed(sockaddr const& address) const {
  Address a;
  if (!ToAddress(address, a)) return false;
  bool own = IsOwnAddress(a.bytes);
  uint16_t self = self_port_.load();
  if (own && self != 0 && a.port == self) return false;  // Ferry itself, allowed or not
  for (auto const& block : allow_) {
    if (InPrefix(a.bytes, block.bytes, block.prefix)) return true;
  }
  return !own && !IsInternal(a.bytes);
}

StatusOr<std::vector<sockaddr_storage>> PushPolicy::Resolve(PushEndpoint const& endpoint) const {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &found); rc != 0) {
    return UnavailableError("cannot resolve " + endpoint.host + ": " + gai_strerror(rc));
  }
  std::vector<sockaddr_storage> out;
  bool refused = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (!Allowed(*a->ai_addr)) {
      refused = true;
      continue;
    }
    sockaddr_storage s{};
    std::memcpy(&s, a->ai_addr, a->ai_addrlen);
    out.push_back(s);
  }
  freeaddrinfo(found);
  if (out.empty()) {
    return Status(refused ? StatusCode::kPermissionDenied : StatusCode::kUnavailable,
                  refused ? "push endpoint " + endpoint.host + " is an internal address; allow it with "
                                                               "ferry serve --push-allow"
                          : "no address for " + endpoint.host);
  }
  return out;
}

Status PushPolicy::CheckEndpoint(std::string const& url) const {
  if (url.empty()) return OkStatus();  // a pull subscription
  auto endpoint = ParsePushEndpoint(url);
  if (!endpoint.ok()) return endpoint.status();
  auto resolved = Resolve(*endpoint);
  if (resolved.status().code() == StatusCode::kPermissionDenied) {
    return InvalidArgumentError("Push endpoint " + url + " is an internal address (loopback, private, link-local "
                                "or this machine); allow it with ferry serve --push-allow");
  }
  // A name that does not resolve yet may later; it is checked again at every delivery.
  return OkStatus();
}

}  // namespace ferry
