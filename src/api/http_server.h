#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ferry/status.h"

namespace boost::asio {
class io_context;
}

namespace ferry {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-decoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;
  // Set (by the server's I/O thread) once the client has gone away while a worker handles the request, so a
  // handler that waits (a call queued for a busy function) can give up instead of holding its thread. Only for
  // requests HttpServerOptions::watch_client picks; null for the others.
  std::shared_ptr<std::atomic<bool>> client_gone;
  // With client_gone, for the fast handler: set to true, before the handler returns, when the call it took waits
  // in a queue (for a busy function). Only then is the connection watched: a watch costs system calls on every
  // call, and a call that is sent at once has no queue slot to give back.
  std::shared_ptr<bool> queued;

  // The first value of a query parameter, or "".
  [[nodiscard]] std::string Query(std::string_view name) const;
  [[nodiscard]] std::string Header(std::string_view lowercase_name) const;
};

// Bytes of an open file sent as a response body, streamed from the file as the client takes them (a download of
// any size holds a few kilobytes of memory). Owns `fd`.
struct FileSlice {
  FileSlice(int fd, int64_t offset, int64_t length) : fd(fd), offset(offset), length(length) {}
  FileSlice(FileSlice const&) = delete;
  FileSlice& operator=(FileSlice const&) = delete;
  ~FileSlice();
  int fd;
  int64_t offset, length;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<FileSlice> file;  // when set, the body is these bytes, and `body` is ignored
};

// Runs on a worker thread and may block (a long-poll pull does). Exceptions become a 500.
using HttpHandler = std::function<HttpResponse(HttpRequest const&)>;
// Answers a request that a fast handler took. Called once, on the server's I/O thread.
using HttpReply = std::function<void(HttpResponse)>;
// Tried first for every request, on the I/O thread, which it must never block: it takes the request (returns
// true) and answers it through `reply` from work it runs on the event loop `io`, or leaves it to the HttpHandler
// (returns false). What can be done without a thread hand-off (a call to a function instance) is done so.
using HttpFastHandler = std::function<bool(HttpRequest const& request, boost::asio::io_context& io, HttpReply reply)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8085;  // 0: pick a free port
  // Handlers run on lanes, each a thread pool of its own, so that one kind of slow request (long-poll pulls,
  // function calls waiting for an instance) cannot take the threads the others need (the admin API, publishing).
  // `lane` picks a request's lane, an index into lane_threads; without it every request takes lane 0.
  std::vector<int> lane_threads = {32};
  std::function<std::size_t(HttpRequest const&)> lane;
  // Requests whose handler may wait on the client's behalf (a call queued for a busy function): while a worker has
  // one, the I/O thread watches its connection and sets HttpRequest::client_gone when the client leaves. Others
  // are not watched, which costs nothing.
  std::function<bool(HttpRequest const&)> watch_client;
  // A body past this is answered 413. Pub/Sub's 10 MB publish limit in base64 JSON stays under it.
  std::size_t max_body_bytes = 16 * 1024 * 1024;
  // When set, the body limit of a request by its target (path and query), in place of max_body_bytes.
  std::function<std::size_t(std::string_view target)> body_limit_for;
  std::size_t max_header_bytes = 64 * 1024;
  // A request must arrive whole within this, and an idle keep-alive connection is closed after it.
  std::chrono::milliseconds read_timeout{30000};
  // The first request of a new connection must have sent its headers within this (a slow sender holds nothing
  // for long).
  std::chrono::milliseconds header_timeout{10000};
  std::size_t max_connections = 4096;
  // One address may hold at most this many of them, so one client cannot lock out the others.
  std::size_t max_connections_per_peer = 1024;
  // When set, a connection that opens with the HTTP/2 client preface ("PRI * HTTP/2.0") is handed over as its
  // socket descriptor (the callee owns it): how gRPC shares the port.
  std::function<void(int fd)> http2_connections;
  // When set (PEM files), every connection speaks TLS: a client offering only "h2" in ALPN (gRPC's) goes to
  // http2_connections through a bridge; one offering "http/1.1" (curl, browsers) or nothing, to the HTTP server.
  // A plain connection then fails its handshake.
  std::string tls_cert_file, tls_key_file;
  HttpFastHandler fast_handler;
  // The event loop to run on (the server's I/O thread runs it), so others can share it: function instances' output
  // is read there (FunctionServiceOptions::output_loop). Made with a concurrency hint of 1; it must outlive the
  // server. Null: the server's own.
  boost::asio::io_context* io = nullptr;
};

// Reads one whole HTTP/1.1 request from `bytes` with the server's parser and decoding (path, query, headers), with
// no network: nullopt when it is malformed, incomplete or over a limit. What the fuzz target drives.
std::optional<HttpRequest> ParseHttpRequest(std::string_view bytes, std::size_t max_body_bytes = 16 << 20,
                                            std::size_t max_header_bytes = 64 << 10);

// An HTTP/1.1 server on Boost.Beast: keep-alive, bounded header and body sizes, a deadline on every read, so no
// client can hold it. Network I/O runs on one thread with coroutines; handlers run on a worker pool, except what
// the fast handler takes.
class HttpServer {
 public:
  static StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions const& options, HttpHandler handler);
  virtual ~HttpServer() = default;
  [[nodiscard]] virtual uint16_t port() const = 0;
  // Blocks until Stop() is called from another thread or a signal handler thread.
  virtual void Wait() = 0;
  virtual void Stop() = 0;
};

// The Google error body: {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}.
HttpResponse ErrorResponse(Status const& status);
// The same with an HTTP status that the code does not imply (405, 413).
HttpResponse ErrorResponse(Status const& status, int http_status);
int HttpStatusFor(StatusCode code);
// 405 for a method the path does not take, with Allow: `allowed` ("GET, POST").
HttpResponse MethodNotAllowed(HttpRequest const& request, char const* allowed);

}  // namespace ferry
