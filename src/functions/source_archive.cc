#include "functions/source_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "common/split.h"

namespace ferry {
namespace {

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

// A zip entry's path as a relative path of plain components ("a/b/c.py", a trailing '/' for a directory), or an
// error saying what is wrong with it.
StatusOr<std::string> CheckedPath(char const* raw, std::size_t max_bytes) {
  if (raw == nullptr) return InvalidArgumentError("the source zip has an entry without a name");
  std::string_view path(raw);
  std::string shown(path.substr(0, 200));
  auto bad = [&](std::string const& why) { return InvalidArgumentError("source zip entry \"" + shown + "\": " + why); };
  if (path.empty()) return bad("an empty name");
  if (path.size() > max_bytes) return bad("a name longer than " + std::to_string(max_bytes) + " bytes");
  if (path.front() == '/') return bad("an absolute path");
  if (path.find('\\') != std::string_view::npos) return bad("a backslash in its name");
  std::string_view body = path.back() == '/' ? path.substr(0, path.size() - 1) : path;
  for (std::string_view part : Split(body, '/')) {
    if (part.empty() || part == "." || part == "..") return bad("a path outside the source directory");
  }
  return std::string(path);
}

Status WriteFile(archive* a, std::filesystem::path const& path, bool executable, int64_t& budget,
                 std::string const& shown) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, executable ? 0755 : 0644);
  if (fd < 0) {
    if (errno == EEXIST) return InvalidArgumentError("source zip entry \"" + shown + "\" is in the zip twice");
    return InternalError("cannot write " + path.string() + ": " + std::strerror(errno));
  }
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
  char buf[64 * 1024];
  while (true) {
    la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      return InvalidArgumentError("source zip entry \"" + shown + "\" cannot be read: " +
                                  (archive_error_string(a) ? archive_error_string(a) : "corrupt data"));
    }
    budget -= n;
    if (budget < 0) return InvalidArgumentError("the source zip unpacks to more than its limit");
    for (la_ssize_t done = 0; done < n;) {
      ssize_t w = ::write(fd, buf + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return InternalError("cannot write " + path.string() + ": " + std::strerror(errno));
      done += w;
    }
  }
  return OkStatus();
}

Status Unpack(std::string_view bytes, std::filesystem::path const& root, ZipLimits const& limits) {
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  if (!a) return InternalError("cannot allocate a zip reader");
  archive_read_support_format_zip(a.get());
  if (archive_read_open_memory(a.get(), bytes.data(), bytes.size()) != ARCHIVE_OK) {
    return InvalidArgumentError(std::string("the source is not a zip archive: ") +
                                (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable"));
  }
  int64_t budget = limits.max_unpacked_bytes;
  int64_t entries = 0;
  std::set<std::string> dirs;
  while (true) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return InvalidArgumentError(std::string("the source zip is corrupt: ") +
                                  (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unreadable"));
    }
    if (++entries > limits.max_entries) {
      return InvalidArgumentError("the source zip has more than " + std::to_string(limits.max_entries) + " entries");
    }
    auto path = CheckedPath(archive_entry_pathname(entry), limits.max_path_bytes);
    if (!path.ok()) return path.status();
    if (archive_entry_hardlink(entry) != nullptr || archive_entry_symlink(entry) != nullptr) {
      return InvalidArgumentError("source zip entry \"" + *path + "\" is a link: only files and directories");
    }
    mode_t type = archive_entry_filetype(entry);
    bool is_dir = type == AE_IFDIR || path->back() == '/';
    if (!is_dir && type != AE_IFREG && type != 0) {
      return InvalidArgumentError("source zip entry \"" + *path + "\" is not a file or a directory");
    }
    std::filesystem::path target = root / std::filesystem::path(*path).relative_path();
    std::error_code ec;
    if (is_dir) {
      std::filesystem::create_directories(target, ec);
      if (ec) return InvalidArgumentError("source zip entry \"" + *path + "\": " + ec.message());
      continue;
    }
    // Parents come from the entry's own checked path, created as directories: nothing in root is a link.
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec) return InvalidArgumentError("source zip entry \"" + *path + "\": " + ec.message());
    bool executable = (archive_entry_perm(entry) & S_IXUSR) != 0;
    if (Status st = WriteFile(a.get(), target, executable, budget, *path); !st.ok()) return st;
  }
  return OkStatus();
}

}  // namespace

Status UnpackZip(std::string_view archive, std::string const& dir, ZipLimits const& limits) {
  std::filesystem::path root(dir);
  std::error_code ec;
  if (std::filesystem::exists(root, ec)) return InternalError(dir + " exists already");
  std::filesystem::create_directories(root, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  Status st = Unpack(archive, root, limits);
  if (!st.ok()) std::filesystem::remove_all(root, ec);
  return st;
}

}  // namespace ferry
