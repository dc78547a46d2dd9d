#include "store/sqlite/storage_faults.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sqlite3.h>

namespace ferry {
namespace {

std::string* fault_file = nullptr;  // set once, before any database opens; never freed
sqlite3_vfs* base_vfs = nullptr;

// A file of the wrapped VFS: the base file's methods, behind ours. SQLite allocates szOsFile bytes for it; the
// base file lives right after this header.
struct FaultFile {
  sqlite3_file header;
  sqlite3_file* base() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

FaultFile* Of(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }

int Close(sqlite3_file* f) { return Of(f)->base()->pMethods->xClose(Of(f)->base()); }
int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 at) {
  return Of(f)->base()->pMethods->xRead(Of(f)->base(), p, n, at);
}
int Write(sqlite3_file* f, void const* p, int n, sqlite3_int64 at) {
  if (CurrentStorageFault() == StorageFault::kDiskFull) return SQLITE_FULL;
  return Of(f)->base()->pMethods->xWrite(Of(f)->base(), p, n, at);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) { return Of(f)->base()->pMethods->xTruncate(Of(f)->base(), size); }
int Sync(sqlite3_file* f, int flags) {
  if (CurrentStorageFault() == StorageFault::kSyncFails) return SQLITE_IOERR_FSYNC;
  return Of(f)->base()->pMethods->xSync(Of(f)->base(), flags);
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) { return Of(f)->base()->pMethods->xFileSize(Of(f)->base(), size); }
int Lock(sqlite3_file* f, int level) { return Of(f)->base()->pMethods->xLock(Of(f)->base(), level); }
int Unlock(sqlite3_file* f, int level) { return Of(f)->base()->pMethods->xUnlock(Of(f)->base(), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Of(f)->base()->pMethods->xCheckReservedLock(Of(f)->base(), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Of(f)->base()->pMethods->xFileControl(Of(f)->base(), op, arg);
}
int SectorSize(sqlite3_file* f) { return Of(f)->base()->pMethods->xSectorSize(Of(f)->base()); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Of(f)->base()->pMethods->xDeviceCharacteristics(Of(f)->base());
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Of(f)->base()->pMethods->xShmMap(Of(f)->base(), region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Of(f)->base()->pMethods->xShmLock(Of(f)->base(), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Of(f)->base()->pMethods->xShmBarrier(Of(f)->base()); }
int ShmUnmap(sqlite3_file* f, int delete_flag) { return Of(f)->base()->pMethods->xShmUnmap(Of(f)->base(), delete_flag); }
int Fetch(sqlite3_file* f, sqlite3_int64 at, int n, void** out) {
  return Of(f)->base()->pMethods->xFetch(Of(f)->base(), at, n, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 at, void* p) { return Of(f)->base()->pMethods->xUnfetch(Of(f)->base(), at, p); }

sqlite3_io_methods const kMethods = {
    3,         Close,  Read,    Write,     Truncate,  Sync,       FileSize, Lock,    Unlock,
    CheckReservedLock, FileControl, SectorSize, DeviceCharacteristics, ShmMap, ShmLock, ShmBarrier, ShmUnmap,
    Fetch,     Unfetch};

int Open(sqlite3_vfs* vfs, char const* name, sqlite3_file* file, int flags, int* out_flags) {
  FaultFile* f = Of(file);
  f->header.pMethods = nullptr;
  int rc = base_vfs->xOpen(base_vfs, name, f->base(), flags, out_flags);
  if (rc == SQLITE_OK && f->base()->pMethods != nullptr) f->header.pMethods = &kMethods;
  return rc;
}

}  // namespace

StorageFault CurrentStorageFault() {
  if (fault_file == nullptr) return StorageFault::kNone;
  int fd = ::open(fault_file->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StorageFault::kNone;
  char buf[16] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n >= 4 && std::strncmp(buf, "full", 4) == 0) return StorageFault::kDiskFull;
  if (n >= 3 && std::strncmp(buf, "eio", 3) == 0) return StorageFault::kSyncFails;
  return StorageFault::kNone;
}

bool InstallStorageFaultsFromEnvironment() {
  char const* path = std::getenv("FERRY_FAULT_FILE");
  if (path == nullptr || *path == '\0' || fault_file != nullptr) return fault_file != nullptr;
  base_vfs = sqlite3_vfs_find("unix");
  if (base_vfs == nullptr || base_vfs->iVersion < 3) return false;
  // The base's methods, ours where we inject; every file gets room for our header in front of the base's.
  static sqlite3_vfs vfs = *base_vfs;
  vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + base_vfs->szOsFile;
  vfs.zName = "ferry-faults";
  vfs.pNext = nullptr;
  vfs.xOpen = Open;
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/1) != SQLITE_OK) return false;
  fault_file = new std::string(path);
  return true;
}

}  // namespace ferry
