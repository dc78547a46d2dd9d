#pragma once

#include <gmock/gmock.h>

#include "ferry/status.h"

namespace ferry {
inline void PrintTo(Status const& s, std::ostream* os) { *os << StatusCodeName(s.code()) << ": " << s.message(); }
template <typename T>
void PrintTo(StatusOr<T> const& s, std::ostream* os) {
  PrintTo(s.status(), os);
}
}  // namespace ferry

namespace ferry::testing {

inline Status const& StatusOf(Status const& s) { return s; }
template <typename T>
Status const& StatusOf(StatusOr<T> const& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  auto const& st = StatusOf(arg);
  if (!st.ok()) *result_listener << "status " << StatusCodeName(st.code()) << ": " << st.message();
  return st.ok();
}

MATCHER_P(StatusIs, code, "has status code " + std::string(StatusCodeName(code))) {
  auto const& st = StatusOf(arg);
  *result_listener << "status " << StatusCodeName(st.code()) << ": " << st.message();
  return st.code() == code;
}

// A status with `code` whose message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher, "has status code " + std::string(StatusCodeName(code))) {
  auto const& st = StatusOf(arg);
  *result_listener << "status " << StatusCodeName(st.code()) << ": " << st.message();
  return st.code() == code && ::testing::Matches(message_matcher)(st.message());
}

// An OK StatusOr whose value matches `matcher`.
MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status " << StatusCodeName(arg.status().code()) << ": " << arg.status().message();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

}  // namespace ferry::testing
