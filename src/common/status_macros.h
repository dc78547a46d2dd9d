#pragma once

#include <utility>

#include "ferry/status.h"

namespace ferry::internal {
inline Status const& GetStatus(Status const& s) { return s; }
template <typename T>
Status const& GetStatus(StatusOr<T> const& s) {
  return s.status();
}
}  // namespace ferry::internal

#define FERRY_CONCAT_INNER(a, b) a##b
#define FERRY_CONCAT(a, b) FERRY_CONCAT_INNER(a, b)

// Returns the error of a Status or StatusOr expression from the enclosing function.
#define FERRY_RETURN_IF_ERROR(expr)                                   \
  do {                                                                \
    auto const& _ferry_st = (expr);                                   \
    if (!_ferry_st.ok()) return ::ferry::internal::GetStatus(_ferry_st); \
  } while (false)

// `FERRY_ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value, or returns F()'s error.
#define FERRY_ASSIGN_OR_RETURN(lhs, expr) FERRY_ASSIGN_OR_RETURN_IMPL(FERRY_CONCAT(_ferry_or_, __LINE__), lhs, expr)
#define FERRY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(*tmp)
