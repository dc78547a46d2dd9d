#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// What a function's source zip may hold (Cloud Functions' 1st-gen limits: 100 MB uploaded, 500 MB unpacked).
struct ZipLimits {
  int64_t max_unpacked_bytes = 500LL << 20;
  int64_t max_entries = 100'000;
  std::size_t max_path_bytes = 1024;
};

// Unpacks the zip `archive` (its bytes) into `dir`, which must not exist yet (it is created, with its parents).
// Only regular files and directories, each under `dir`: an absolute path, a ".." or "." component, a backslash, a
// NUL, a link, a device, an entry that repeats another, or any limit passed is INVALID_ARGUMENT naming the entry,
// and `dir` is removed again. Files keep their owner-executable bit, nothing else of the zip's metadata. Nothing
// but zip is read (libarchive with only its zip reader: no other formats, no filters).
Status UnpackZip(std::string_view archive, std::string const& dir, ZipLimits const& limits = {});

}  // namespace ferry
