#pragma once

#include <cstdio>
#include <cstdlib>

// A broken invariant: print where and abort; the supervisor restarts the daemon. Not for expected failures.
#define FERRY_CHECK(cond)                                                                      \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "%s:%d: FERRY_CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
      std::abort();                                                                            \
    }                                                                                          \
  } while (false)
