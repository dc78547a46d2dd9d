// Object names: what CheckObjectName accepts is a path below a bucket, never out of it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/utf8.h"
#include "storage/beneath.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view name(reinterpret_cast<char const*>(data), size);
  if (!ferry::CheckObjectName(name).ok()) return 0;
  if (!ferry::IsValidUtf8(name) || name.front() == '/' || name.back() == '/') std::abort();
  if (name.find("/.") != std::string_view::npos || name.front() == '.') std::abort();  // no "..", no hidden part
  if (name.find("//") != std::string_view::npos || name.find('\0') != std::string_view::npos) std::abort();
  return 0;
}
