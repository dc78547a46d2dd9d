#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/status.h"

struct pg_conn;
struct pg_result;

namespace ferry {

// The parameters of one statement, sent in text form except bytea ones (binary, so no escaping).
class PgParams {
 public:
  PgParams& Add(int64_t value);
  PgParams& Add(std::string_view text);
  PgParams& AddBytes(std::string_view bytes);
  PgParams& Add(int value) { return Add(int64_t{value}); }
  PgParams& Add(char const* text) { return Add(std::string_view(text)); }
  PgParams& Add(std::string const& text) { return Add(std::string_view(text)); }
  PgParams& AddBool(bool value) { return Add(std::string_view(value ? "t" : "f")); }
  // An int8[] parameter.
  PgParams& AddArray(std::vector<int64_t> const& values);
  // A text[] parameter (any text: quoted and escaped as an array literal).
  PgParams& AddArray(std::vector<std::string> const& values);
  [[nodiscard]] int size() const { return static_cast<int>(values_.size()); }

 private:
  friend class PgConn;
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// Appends `text` to a row of COPY's text format, escaped (backslash, tab, newline, carriage return).
void AppendCopyText(std::string& row, std::string_view text);
// Appends `bytes` as a bytea field of COPY's text format (hex: \\x...).
void AppendCopyBytes(std::string& row, std::string_view bytes);

// The rows of a statement, in text form. Columns 0-based.
class PgRows {
 public:
  explicit PgRows(pg_result* result) : result_(result) {}
  ~PgRows();
  PgRows(PgRows&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgRows& operator=(PgRows&&) = delete;

  [[nodiscard]] int size() const;
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] int64_t Int(int row, int col) const;
  [[nodiscard]] std::string Text(int row, int col) const;
  [[nodiscard]] std::string Bytes(int row, int col) const;  // a bytea column
  [[nodiscard]] bool Bool(int row, int col) const;
  [[nodiscard]] bool IsNull(int row, int col) const;
  [[nodiscard]] int Affected() const;  // rows an INSERT, UPDATE or DELETE touched

 private:
  pg_result* result_;
};

// One PostgreSQL connection with a cache of prepared statements. Not thread-safe: one owner at a time (PgPool).
class PgConn {
 public:
  static StatusOr<std::unique_ptr<PgConn>> Open(std::string const& conninfo);
  ~PgConn();

  // A statement without parameters (several, separated by semicolons, are allowed).
  Status Exec(std::string_view sql);
  // A prepared statement: `sql` must be a string with a stable address (a literal, or one built once), as the
  // cache is keyed by it.
  StatusOr<PgRows> Query(char const* sql, PgParams const& params = {});
  Status Run(char const* sql, PgParams const& params = {}) {
    auto rows = Query(sql, params);
    return rows.ok() ? OkStatus() : rows.status();
  }
  // COPY ... FROM STDIN (text format): `sql` the COPY statement, `rows` its rows, already escaped (CopyText).
  Status CopyIn(char const* sql, std::string_view rows);
  // Whether the connection broke (the pool then replaces it).
  [[nodiscard]] bool broken() const;
  pg_conn* raw() { return conn_; }

 private:
  explicit PgConn(pg_conn* conn) : conn_(conn) {}
  Status ResultError(pg_result* result);
  pg_conn* conn_;
  std::unordered_map<char const*, std::string> prepared_;  // sql address -> statement name
};

// A bounded pool of connections to one database. Thread-safe.
class PgPool {
 public:
  PgPool(std::string conninfo, int size, std::chrono::milliseconds max_wait)
      : conninfo_(std::move(conninfo)), size_(size), max_wait_(max_wait) {}

  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<PgConn> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    PgConn* operator->() const { return conn_.get(); }
    PgConn& operator*() const { return *conn_; }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConn> conn_;
  };

  // A connection, waiting up to the pool's max_wait for one to be free (UNAVAILABLE after).
  StatusOr<Lease> Acquire();
  std::string const& conninfo() const { return conninfo_; }

 private:
  void Release(std::unique_ptr<PgConn> conn);

  std::string const conninfo_;
  int const size_;
  std::chrono::milliseconds const max_wait_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PgConn>> idle_;  // GUARDED_BY(mu_)
  int open_ = 0;                               // GUARDED_BY(mu_): connections open, idle or leased
};

// SQLSTATE classes worth one more try of the whole transaction: serialization failure, deadlock.
bool IsRetryable(Status const& status);

}  // namespace ferry
