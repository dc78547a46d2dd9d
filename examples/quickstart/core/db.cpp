#include "core/db.h"

#include <sqlite3.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace core {
namespace {

std::unique_ptr<Db> instance;
std::mutex mu;

void Check(sqlite3* db, int rc, char const* what) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
  }
}

}  // namespace

void Db::Open() {
  char const* path = std::getenv("DATABASE_PATH");
  sqlite3* db = nullptr;
  Check(db, sqlite3_open(path != nullptr ? path : "quickstart.db", &db), "open database");
  sqlite3_busy_timeout(db, 5000);
  Check(db,
        sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS practices(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                     "INSERT INTO practices(name) SELECT 'Smile Dental' WHERE NOT EXISTS (SELECT 1 FROM practices);"
                     "INSERT INTO practices(name) SELECT 'Bright Teeth' WHERE (SELECT COUNT(*) FROM practices) < 2;"
                     "INSERT INTO practices(name) SELECT 'Peak Ortho' WHERE (SELECT COUNT(*) FROM practices) < 3;",
                     nullptr, nullptr, nullptr),
        "create practices");
  instance.reset(new Db(db));
}

Db& Db::Get() { return *instance; }

int64_t Db::CountPractices() {
  std::lock_guard lock(mu);
  sqlite3_stmt* st = nullptr;
  Check(db_, sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM practices", -1, &st, nullptr), "prepare");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
  Check(db_, sqlite3_step(st), "count practices");
  return sqlite3_column_int64(st, 0);
}

}  // namespace core
