#pragma once

namespace ferry {

// Storage faults on demand, for tests (a fake that makes rare failures happen, never on in production): when the
// environment variable FERRY_FAULT_FILE names a file when the daemon starts, the file's first word says which
// fault is in force right now, read at every write and sync:
//   full   every write of a database file fails as a full disk does (ENOSPC, SQLite's SQLITE_FULL)
//   eio    every fsync fails with EIO, SQLite's and the message store's own
//   (anything else, or no file)  no fault
enum class StorageFault { kNone, kDiskFull, kSyncFails };

// The fault in force; kNone unless fault injection was installed.
StorageFault CurrentStorageFault();

// When FERRY_FAULT_FILE is set: makes a fault-injecting wrapper of SQLite's "unix" file system (VFS) the
// default, so every database opened afterwards goes through it. Call once, before opening any. Returns whether
// fault injection is on.
bool InstallStorageFaultsFromEnvironment();

}  // namespace ferry
