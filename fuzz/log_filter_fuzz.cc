// Cloud Logging filters, as entries:list takes them: parsed (bounded in size and nesting) and, when they parse,
// matched against an entry. Never a crash or a runaway recursion.
#include <cstdint>
#include <string_view>

#include "model/log_filter.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  auto filter = ferry::LogFilter::Parse(text);
  if (!filter.ok()) return 0;
  (void)filter->Matches([](std::string const& path) -> std::optional<std::string> {
    if (path == "severity") return std::string("ERROR");
    if (path == "timestamp") return std::string("2026-11-30T00:00:01.000Z");
    if (path == "resource.labels.function_name") return std::string("bar");
    return std::nullopt;
  });
  return 0;
}
