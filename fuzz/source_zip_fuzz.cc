// Function source zips, as gcloud functions deploy uploads them: unpacked into a fresh directory under a small
// limit. Never a crash, never a file outside that directory; a refused zip leaves nothing behind.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "functions/source_archive.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  static std::filesystem::path const base = [] {
    auto dir = std::filesystem::temp_directory_path() / ("ferry-zip-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir;
  }();
  std::filesystem::path const target = base / "src";
  std::string_view bytes(reinterpret_cast<char const*>(data), size);
  ferry::Status st = ferry::UnpackZip(bytes, target.string(), {.max_unpacked_bytes = 1 << 20, .max_entries = 256});
  std::error_code ec;
  if (!st.ok() && std::filesystem::exists(target, ec)) std::abort();  // a refused zip leaves nothing
  // Nothing lands beside the target: the base holds the target directory alone.
  for (auto const& entry : std::filesystem::directory_iterator(base)) {
    if (entry.path() != target) std::abort();
  }
  for (auto it = std::filesystem::recursive_directory_iterator(target, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink()) std::abort();
  }
  std::filesystem::remove_all(target, ec);
  return 0;
}
