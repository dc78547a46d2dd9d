#pragma once

#include <cstdint>

struct sqlite3;

namespace core {

// The app's database: SQLite at $DATABASE_PATH (default quickstart.db in the function's directory), created
// with a `practices` table and a few rows on first use.
class Db {
 public:
  static void Open();
  static Db& Get();
  int64_t CountPractices();

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace core
