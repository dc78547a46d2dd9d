#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(UniqueFd const&) = delete;
  UniqueFd& operator=(UniqueFd const&) = delete;
  ~UniqueFd();
  [[nodiscard]] int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// An object name is a path below its bucket's directory: valid UTF-8, 1 to 1024 bytes, no empty, "." or ".."
// part, no part longer than a file name may be (255 bytes), none hidden (a leading '.', where Ferry keeps its own
// files), no control characters. INVALID_ARGUMENT otherwise, without quoting the name.
Status CheckObjectName(std::string_view name);

// Files below a root directory, reached without following a symbolic link anywhere below the root: each
// directory on the way is opened with O_NOFOLLOW relative to the one before (the effect of openat2's
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, which Debian's glibc does not wrap). A link planted in a bucket, to a
// file or a directory, is then never a way out of it. Names must have passed CheckObjectName.
struct Beneath {
  // The directory holding `name` (its last part in `leaf`), opened; creates missing directories when `create`.
  static StatusOr<UniqueFd> OpenParent(std::string const& root, std::string_view name, bool create,
                                       std::string* leaf);
  // A regular file, opened for reading; NOT_FOUND when it is missing, a link, or not a regular file.
  static StatusOr<UniqueFd> OpenFile(std::string const& root, std::string_view name, struct stat* st);
};

}  // namespace ferry
