#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// What a token may do. `admin` holds every role; the others are disjoint, as Google's Pub/Sub roles are.
enum class Role : uint8_t {
  kAdmin = 1,       // deploy, delete, create and change topics and subscriptions: every call
  kViewer = 2,      // read-only admin and Pub/Sub: list, describe, executions, logs, metrics
  kPublisher = 4,   // publish, webhooks, storage writes
  kSubscriber = 8,  // pull, ack, StreamingPull, seek, storage reads
  kInvoker = 16,    // HTTP functions and the admin `:call`
};
std::string_view RoleName(Role role);

// One token: its secret's SHA-256 digest (the secret itself is not kept) and the roles it holds (a mask of Role).
struct TokenGrant {
  std::array<unsigned char, 32> digest{};
  uint8_t roles = 0;
  bool short_secret = false;  // under kMinSecretBytes: accepted (tests and old scripts use such), with a warning
};

// A secret shorter than this is easy to guess; `ferry serve` warns about it.
inline constexpr std::size_t kMinSecretBytes = 16;

// "ROLE[,ROLE...]=SECRET", as in --token, FERRY_TOKENS and a token file. The secret is printable ASCII without
// spaces, so it travels in a header unchanged.
StatusOr<TokenGrant> ParseTokenGrant(std::string_view entry);
// Entries separated by newlines (a token file: blank lines and lines starting with '#' are skipped) or, for the
// environment, by whitespace. `origin` names the source in errors.
StatusOr<std::vector<TokenGrant>> ParseTokenList(std::string_view text, std::string_view origin);

// Answers "may the bearer of this Authorization header do this?". Thread-safe (immutable after construction).
// Every check hashes the presented token and compares it with every configured digest in constant time, so
// neither the answer's timing nor a map lookup tells how much of a guess was right.
class TokenAuthenticator {
 public:
  explicit TokenAuthenticator(std::vector<TokenGrant> grants) : grants_(std::move(grants)) {}

  // False when no token is configured: Ferry then serves loopback only and checks no role.
  [[nodiscard]] bool enabled() const { return !grants_.empty(); }

  // OK when `authorization` ("Bearer SECRET", the scheme case-insensitive) names a token that holds `role`;
  // UNAUTHENTICATED when no token or an unknown one is given; PERMISSION_DENIED when the token lacks the role.
  // Always OK when not enabled.
  [[nodiscard]] Status Check(std::string_view authorization, Role role) const;
  // OK when `authorization` names any configured token (or auth is off).
  [[nodiscard]] Status CheckAny(std::string_view authorization) const;

 private:
  // The roles of the presented token; -1 when none is given or it is unknown.
  [[nodiscard]] int RolesOf(std::string_view authorization) const;

  std::vector<TokenGrant> grants_;
};

}  // namespace ferry
