#include "storage/beneath.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/utf8.h"

namespace ferry {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

Status CheckObjectName(std::string_view name) {
  auto invalid = [](char const* why) { return InvalidArgumentError(std::string("Invalid object name: ") + why); };
  if (name.empty() || name.size() > 1024) return invalid("1 to 1024 bytes");
  if (!IsValidUtf8(name)) return invalid("not valid UTF-8");
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return invalid("control characters are not allowed");
  }
  std::string_view rest = name;
  while (true) {
    auto slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    if (part.empty()) return invalid("empty path parts (a leading, trailing or double '/') are not allowed");
    if (part.front() == '.') return invalid("parts beginning with '.' are not allowed");
    if (part.size() > 255) return invalid("each part between '/' is at most 255 bytes");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return OkStatus();
}

StatusOr<UniqueFd> Beneath::OpenParent(std::string const& root, std::string_view name, bool create,
                                       std::string* leaf) {
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return UnavailableError("cannot open the bucket directory: " + std::string(std::strerror(errno)));
  std::string_view rest = name;
  while (true) {
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) break;
    std::string part(rest.substr(0, slash));
    rest.remove_prefix(slash + 1);
    int fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        return UnavailableError("cannot create a directory for the object: " + std::string(std::strerror(errno)));
      }
      fd = ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      // ELOOP or ENOTDIR: a link or a file where a directory should be.
      return errno == ENOENT ? NotFoundError("No such object")
                             : InvalidArgumentError("The object's path goes through a link or a file");
    }
    dir = UniqueFd(fd);
  }
  *leaf = std::string(rest);
  return dir;
}

StatusOr<UniqueFd> Beneath::OpenFile(std::string const& root, std::string_view name, struct stat* st) {
  std::string leaf;
  auto dir = OpenParent(root, name, false, &leaf);
  if (!dir.ok()) return dir.status().code() == StatusCode::kInvalidArgument ? NotFoundError("No such object")
                                                                           : dir.status();
  UniqueFd fd(::openat(dir->get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return NotFoundError("No such object");
  if (::fstat(fd.get(), st) != 0 || !S_ISREG(st->st_mode)) return NotFoundError("No such object");
  return fd;
}

}  // namespace ferry
