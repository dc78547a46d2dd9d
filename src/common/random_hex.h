#pragma once

#include <sys/random.h>

#include <cstddef>
#include <string>
#include <vector>

#include "common/check.h"

namespace ferry {

// `bytes` random bytes from the kernel's CSPRNG (getrandom), as lowercase hex: for secrets and capability ids.
inline std::string RandomHex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  for (std::size_t got = 0; got < raw.size();) {
    ssize_t n = getrandom(raw.data() + got, raw.size() - got, 0);
    FERRY_CHECK(n > 0);
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : raw) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace ferry
