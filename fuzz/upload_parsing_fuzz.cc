// The storage API's upload and download parsing: multipart bodies, Content-Range and Range. The first byte picks
// the parser; ranges that parse lie within what they describe.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/storage/upload_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<char const*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto parts = ferry::MultipartParts("multipart/related; boundary=b", text);
      if (parts.ok() && parts->size() > 2) std::abort();
      break;
    }
    case 1: {
      auto range = ferry::ParseContentRange(text);
      if (range.ok() && range->has_bytes && (range->first < 0 || range->last < range->first)) std::abort();
      break;
    }
    case 2: {
      constexpr int64_t kSize = 1000;
      auto range = ferry::ParseRange(text, kSize);
      if (range.ok() && (range->first < 0 || range->second >= kSize || range->second < range->first)) std::abort();
      break;
    }
  }
  return 0;
}
