#include "api/auth/tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

#include "common/split.h"

namespace ferry {
namespace {

std::array<unsigned char, 32> Digest(std::string_view secret) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<unsigned char const*>(secret.data()), secret.size(), out.data());
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status Unauthenticated(std::string_view authorization) {
  return Status(StatusCode::kUnauthenticated, authorization.empty()
                                                  ? "Request is missing a bearer token (Authorization: Bearer TOKEN)"
                                                  : "The bearer token is not valid");
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kViewer: return "viewer";
    case Role::kPublisher: return "publisher";
    case Role::kSubscriber: return "subscriber";
    case Role::kInvoker: return "invoker";
  }
  return "?";
}

StatusOr<TokenGrant> ParseTokenGrant(std::string_view entry) {
  auto eq = entry.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return InvalidArgumentError("a token must be ROLE[,ROLE]=SECRET (roles: admin, viewer, publisher, subscriber, "
                                "invoker)");
  }
  TokenGrant grant;
  for (auto name : Split(entry.substr(0, eq), ',')) {
    bool known = false;
    for (Role role : {Role::kAdmin, Role::kViewer, Role::kPublisher, Role::kSubscriber, Role::kInvoker}) {
      if (name == RoleName(role)) {
        grant.roles |= static_cast<uint8_t>(role);
        known = true;
      }
    }
    if (!known) {
      return InvalidArgumentError("unknown role \"" + std::string(name) +
                                  "\" (admin, viewer, publisher, subscriber or invoker)");
    }
  }
  std::string_view secret = entry.substr(eq + 1);
  if (secret.empty()) return InvalidArgumentError("a token needs a secret after '='");
  grant.short_secret = secret.size() < kMinSecretBytes;
  for (char c : secret) {
    if (c <= ' ' || c > '~') return InvalidArgumentError("a token's secret must be printable ASCII without spaces");
  }
  grant.digest = Digest(secret);
  return grant;
}

StatusOr<std::vector<TokenGrant>> ParseTokenList(std::string_view text, std::string_view origin) {
  std::vector<TokenGrant> out;
  int line_no = 0;
  for (auto line : Split(text, '\n')) {
    ++line_no;
    line = Trim(line);
    if (line.empty() || line.front() == '#') continue;
    // The environment puts several entries on one line, separated by spaces.
    while (!line.empty()) {
      auto space = line.find_first_of(" \t");
      auto grant = ParseTokenGrant(line.substr(0, space));
      if (!grant.ok()) {
        return InvalidArgumentError(std::string(origin) + ":" + std::to_string(line_no) + ": " +
                                    grant.status().message());
      }
      out.push_back(*grant);
      line = space == std::string_view::npos ? std::string_view() : Trim(line.substr(space));
    }
  }
  return out;
}

int TokenAuthenticator::RolesOf(std::string_view authorization) const {
  constexpr std::string_view kBearer = "bearer ";
  if (authorization.size() <= kBearer.size() || !EqualsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) {
    return -1;
  }
  auto digest = Digest(Trim(authorization.substr(kBearer.size())));
  // Compare with every grant, whatever matched before, so the time taken does not depend on which one matches.
  int roles = -1;
  for (auto const& grant : grants_) {
    bool match = CRYPTO_memcmp(grant.digest.data(), digest.data(), digest.size()) == 0;
    roles = match ? grant.roles : roles;
  }
  return roles;
}

Status TokenAuthenticator::Check(std::string_view authorization, Role role) const {
  if (!enabled()) return OkStatus();
  int roles = RolesOf(authorization);
  if (roles < 0) return Unauthenticated(authorization);
  if ((roles & (static_cast<int>(Role::kAdmin) | static_cast<int>(role))) == 0) {
    return Status(StatusCode::kPermissionDenied,
                  "The token does not have the " + std::string(RoleName(role)) + " role needed for this call");
  }
  return OkStatus();
}

Status TokenAuthenticator::CheckAny(std::string_view authorization) const {
  if (!enabled() || RolesOf(authorization) >= 0) return OkStatus();
  return Unauthenticated(authorization);
}

}  // namespace ferry
