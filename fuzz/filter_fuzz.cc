// Subscription filters (Pub/Sub's filter language): any text parses or is refused, never a crash or a runaway
// recursion; a filter that parses is matched against a few attribute sets.
#include <cstdint>
#include <string_view>

#include "model/filter.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  auto filter = ferry::Filter::Parse(std::string_view(reinterpret_cast<char const*>(data), size));
  if (!filter.ok()) return 0;
  (void)filter->Matches({});
  (void)filter->Matches({{"a", "b"}, {"k", "v"}, {"domain", "com"}});
  (void)filter->Matches({{"", ""}, {"a", ""}});
  return 0;
}
