#include "store/postgres/pg_conn.h"

#include <libpq-fe.h>

#include <cstring>

namespace ferry {
namespace {

// libpq's messages end in a newline and may hold more lines (a hint after a tab): one line, for logs and errors.
std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n') {
      out += text[i];
      continue;
    }
    out += "; ";
    while (i + 1 < text.size() && (text[i + 1] == '\t' || text[i + 1] == ' ')) ++i;
  }
  return out;
}

}  // namespace

PgParams& PgParams::Add(int64_t value) {
  values_.push_back(std::to_string(value));
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Add(std::string_view text) {
  values_.emplace_back(text);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::AddBytes(std::string_view bytes) {
  values_.emplace_back(bytes);
  formats_.push_back(1);
  return *this;
}

PgParams& PgParams::AddArray(std::vector<int64_t> const& values) {
  std::string text = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(values[i]);
  }
  text += '}';
  return Add(std::string_view(text));
}

PgParams& PgParams::AddArray(std::vector<std::string> const& values) {
  std::string text = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ',';
    text += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') text += '\\';
      text += c;
    }
    text += '"';
  }
  text += '}';
  return Add(std::string_view(text));
}

PgRows::~PgRows() {
  if (result_ != nullptr) PQclear(result_);
}
int PgRows::size() const { return PQntuples(result_); }
int64_t PgRows::Int(int row, int col) const { return std::strtoll(PQgetvalue(result_, row, col), nullptr, 10); }
std::string PgRows::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col), static_cast<std::size_t>(PQgetlength(result_, row, col)));
}
std::string PgRows::Bytes(int row, int col) const {
  std::size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<unsigned char const*>(PQgetvalue(result_, row, col)), &n);
  if (raw == nullptr) return {};
  std::string out(reinterpret_cast<char*>(raw), n);
  PQfreemem(raw);
  return out;
}
bool PgRows::Bool(int row, int col) const { return PQgetvalue(result_, row, col)[0] == 't'; }
bool PgRows::IsNull(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }
int PgRows::Affected() const {
  char const* n = PQcmdTuples(result_);
  return n[0] == '\0' ? 0 : std::atoi(n);
}

StatusOr<std::unique_ptr<PgConn>> PgConn::Open(std::string const& conninfo) {
  pg_conn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return UnavailableError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = OneLine(PQerrorMessage(conn));
    PQfinish(conn);
    return UnavailableError("postgresql: cannot connect: " + message);
  }
  // The server's notices ("relation already exists, skipping" from a migration that runs on every start) are not
  // the operator's business; errors come back as results.
  PQsetNoticeProcessor(conn, [](void*, char const*) {}, nullptr);
  auto out = std::unique_ptr<PgConn>(new PgConn(conn));
  // Every statement and lock wait is bounded: a stuck database answers UNAVAILABLE instead of holding a thread.
  if (auto st = out->Exec("SET statement_timeout = '30s'; SET lock_timeout = '10s'; "
                          "SET idle_in_transaction_session_timeout = '60s'");
      !st.ok()) {
    return st;
  }
  return out;
}

PgConn::~PgConn() { PQfinish(conn_); }

bool PgConn::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

// A failed statement as a Status a client can act on: UNAVAILABLE for what passes (a lost connection, a
// serialization failure, a lock or statement timeout, too many connections), RESOURCE_EXHAUSTED for a full disk,
// INTERNAL for the rest. The SQLSTATE leads the message, so IsRetryable can read it.
Status PgConn::ResultError(pg_result* result) {
  char const* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string code = state != nullptr ? state : "";
  std::string message =
      "postgresql " + (code.empty() ? std::string("error") : code) + ": " + OneLine(PQerrorMessage(conn_));
  if (result != nullptr) PQclear(result);
  StatusCode status = StatusCode::kInternal;
  if (code.empty() || code.rfind("08", 0) == 0 || code.rfind("40", 0) == 0 || code.rfind("57", 0) == 0 ||
      code == "55P03" || code == "53300") {
    status = StatusCode::kUnavailable;
  } else if (code == "53100") {
    status = StatusCode::kResourceExhausted;
  }
  return Status(status, message);
}

Status PgConn::Exec(std::string_view sql) {
  pg_result* result = PQexec(conn_, std::string(sql).c_str());
  ExecStatusType st = PQresultStatus(result);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(result);
  PQclear(result);
  return OkStatus();
}

void AppendCopyText(std::string& row, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '\\': row += "\\\\"; break;
      case '\t': row += "\\t"; break;
      case '\n': row += "\\n"; break;
      case '\r': row += "\\r"; break;
      default: row += c;
    }
  }
}

void AppendCopyBytes(std::string& row, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  row += "\\\\x";  // bytea's hex form, its backslash escaped for COPY
  for (unsigned char c : bytes) {
    row += kHex[c >> 4];
    row += kHex[c & 15];
  }
}

// Faster than an INSERT of unnested arrays for the rows of a publish: no array literal to parse, no base64.
Status PgConn::CopyIn(char const* sql, std::string_view rows) {
  pg_result* result = PQexec(conn_, sql);
  if (PQresultStatus(result) != PGRES_COPY_IN) return ResultError(result);
  PQclear(result);
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t at = 0; at < rows.size(); at += kChunk) {
    std::size_t n = std::min(kChunk, rows.size() - at);
    if (PQputCopyData(conn_, rows.data() + at, static_cast<int>(n)) != 1) break;
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) return ResultError(nullptr);
  Status st;
  while ((result = PQgetResult(conn_)) != nullptr) {
    if (PQresultStatus(result) != PGRES_COMMAND_OK) {
      if (st.ok()) st = ResultError(result);
      else PQclear(result);
      continue;
    }
    PQclear(result);
  }
  return st;
}

StatusOr<PgRows> PgConn::Query(char const* sql, PgParams const& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size());
    pg_result* prep = PQprepare(conn_, name.c_str(), sql, 0, nullptr);
    if (PQresultStatus(prep) != PGRES_COMMAND_OK) return ResultError(prep);
    PQclear(prep);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<char const*> values;
  std::vector<int> lengths;
  values.reserve(params.values_.size());
  for (auto const& v : params.values_) {
    values.push_back(v.data());
    lengths.push_back(static_cast<int>(v.size()));
  }
  pg_result* result = PQexecPrepared(conn_, it->second.c_str(), params.size(), values.data(), lengths.data(),
                                     params.formats_.data(), 0);
  ExecStatusType st = PQresultStatus(result);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(result);
  return PgRows(result);
}

PgPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->Release(std::move(conn_));
}

StatusOr<PgPool::Lease> PgPool::Acquire() {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, max_wait_, [&] { return !idle_.empty() || open_ < size_; })) {
    return UnavailableError("postgresql: no connection free within " + std::to_string(max_wait_.count()) + " ms");
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  ++open_;
  lock.unlock();
  auto conn = PgConn::Open(conninfo_);
  if (!conn.ok()) {
    std::lock_guard relock(mu_);
    --open_;
    cv_.notify_one();
    return conn.status();
  }
  return Lease(this, *std::move(conn));
}

void PgPool::Release(std::unique_ptr<PgConn> conn) {
  std::lock_guard lock(mu_);
  if (conn->broken()) {
    --open_;  // dropped; the next Acquire opens a new one
  } else {
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

bool IsRetryable(Status const& status) {
  return status.code() == StatusCode::kUnavailable &&
         (status.message().rfind("postgresql 40001", 0) == 0 || status.message().rfind("postgresql 40P01", 0) == 0);
}

}  // namespace ferry
