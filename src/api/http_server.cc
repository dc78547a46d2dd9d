#include "api/http_server.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

// asio's awaitable.hpp in Boost 1.74 uses std::exchange without including <utility>.
#include <utility>

#include <algorithm>
#include <limits>
#include <list>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/basic_file_body.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>

#include "common/status_macros.h"

namespace ferry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && s[i] == '+') ? ' ' : s[i];
  }
  return out;
}

HttpRequest ToRequest(http::request<http::string_body>&& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  std::string_view target(req.target().data(), req.target().size());
  auto q = target.find('?');
  out.path = PercentDecode(target.substr(0, q), false);
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view part = query.substr(0, amp);
      auto eq = part.find('=');
      out.query.emplace_back(PercentDecode(part.substr(0, eq), true),
                             eq == std::string_view::npos ? "" : PercentDecode(part.substr(eq + 1), true));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  for (auto const& field : req) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  out.body = std::move(req.body());
  return out;
}

}  // namespace

std::optional<HttpRequest> ParseHttpRequest(std::string_view bytes, std::size_t max_body_bytes,
                                            std::size_t max_header_bytes) {
  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  beast::error_code ec;
  while (!bytes.empty() && !parser.is_done()) {
    std::size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == http::error::need_more) break;
    if (ec) return std::nullopt;
    bytes.remove_prefix(used);
    if (used == 0) break;
  }
  if (!parser.is_done()) return std::nullopt;
  return ToRequest(parser.release());
}

namespace {

// Beast's File concept over a FileSlice: a file that is just the slice's bytes, read with pread, so a range of a
// large object streams without a seek shared between readers.
class SliceFile {
 public:
  using native_handle_type = int;
  SliceFile() = default;
  explicit SliceFile(std::shared_ptr<FileSlice> slice) : slice_(std::move(slice)) {}
  bool is_open() const { return slice_ != nullptr; }
  void close(beast::error_code& ec) {
    slice_.reset();
    ec = {};
  }
  void open(char const*, beast::file_mode, beast::error_code& ec) { ec = asio::error::operation_not_supported; }
  std::uint64_t size(beast::error_code& ec) const {
    ec = {};
    return static_cast<std::uint64_t>(slice_->length);
  }
  std::uint64_t pos(beast::error_code& ec) const {
    ec = {};
    return pos_;
  }
  void seek(std::uint64_t offset, beast::error_code& ec) {
    pos_ = offset;
    ec = {};
  }
  std::size_t read(void* buffer, std::size_t n, beast::error_code& ec) {
    ec = {};
    auto left = static_cast<std::uint64_t>(slice_->length) - pos_;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, left));
    while (n > 0) {
      ssize_t got = ::pread(slice_->fd, buffer, n, static_cast<off_t>(slice_->offset + static_cast<int64_t>(pos_)));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        ec = got == 0 ? beast::error_code(asio::error::eof) : beast::error_code(errno, beast::system_category());
        return 0;
      }
      pos_ += static_cast<std::uint64_t>(got);
      return static_cast<std::size_t>(got);
    }
    return 0;
  }
  std::size_t write(void const*, std::size_t, beast::error_code& ec) {
    ec = asio::error::operation_not_supported;
    return 0;
  }

 private:
  std::shared_ptr<FileSlice> slice_;
  std::uint64_t pos_ = 0;
};

// The read and write deadlines of every connection, kept with one timer for the whole server. Beast's tcp_stream
// arms a timer for each read and each write: on a keep-alive connection that is two timer operations a request,
// each a cancelled handler to run and, when its timer is the earliest of the loop's, a timerfd_settime (1.2 system
// calls a request at 4 connections, 1-2 us of the loop's 42). Here a connection's deadline is a time point it sets,
// no system call; the one timer, armed for the earliest deadline that may be due, closes the connections past theirs
// (closing fails the read or write they wait in, and any later one). Deadlines only move later on a busy connection,
// so the timer is re-armed when it fires, or for a new connection's earlier header deadline. I/O thread only.
// (The supervisor's CallDeadlines arms its one timer the same way, but keeps a call's deadline in an ordered map, set
// once a call; a connection moves its deadline three times a request, so here it is a plain store and the rare
// sweep scans them all.)
class ConnectionDeadlines {
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Clock::time_point at;
    tcp::socket* socket;
  };

 public:
  // One connection's deadline, registered while it lives.
  class Deadline {
   public:
    Deadline(ConnectionDeadlines& all, tcp::socket& socket)
        : all_(all), entry_(all.entries_.insert(all.entries_.end(), Entry{Clock::time_point::max(), &socket})) {}
    ~Deadline() { all_.entries_.erase(entry_); }
    Deadline(Deadline const&) = delete;
    Deadline& operator=(Deadline const&) = delete;

    // The connection is closed unless the next Set or Clear comes within `after`.
    void Set(Clock::duration after) {
      entry_->at = Clock::now() + after;
      if (entry_->at < all_.armed_) all_.Arm(entry_->at);
    }
    void Clear() { entry_->at = Clock::time_point::max(); }

   private:
    ConnectionDeadlines& all_;
    std::list<Entry>::iterator entry_;
  };

  explicit ConnectionDeadlines(asio::io_context& io) : timer_(io) {}

 private:
  void Arm(Clock::time_point at) {
    armed_ = at;
    timer_.expires_at(at);  // a wait for a later time ends, aborted
    timer_.async_wait([this](beast::error_code ec) {
      if (!ec) Sweep();
    });
  }

  void Sweep() {
    auto const now = Clock::now();
    auto next = Clock::time_point::max();
    for (Entry& e : entries_) {
      if (e.at <= now) {
        e.at = Clock::time_point::max();
        beast::error_code ignored;
        e.socket->close(ignored);
      } else {
        next = std::min(next, e.at);
      }
    }
    armed_ = Clock::time_point::max();
    if (next != Clock::time_point::max()) Arm(next);
  }

  asio::steady_timer timer_;
  Clock::time_point armed_ = Clock::time_point::max();  // when the timer fires; max: not armed
  std::list<Entry> entries_;
};

using Deadline = ConnectionDeadlines::Deadline;

// The server's open connections, on the I/O thread. Each session holds it too: a session destroyed suspended (its
// event loop destroyed after the server) still counts itself out and drops its deadline into something that lives.
struct Connections {
  explicit Connections(asio::io_context& io) : deadlines(io) {}
  std::size_t count = 0;
  std::unordered_map<std::string, std::size_t> per_peer;  // by address
  ConnectionDeadlines deadlines;
};

class BeastHttpServer : public HttpServer {
 public:
  BeastHttpServer(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        io_(options_.io != nullptr ? *options_.io : own_io_),
        acceptor_(io_) {
    if (options_.lane_threads.empty()) options_.lane_threads.push_back(32);
    for (int threads : options_.lane_threads) {
      lanes_.push_back(std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, threads))));
    }
  }

  ~BeastHttpServer() override {
    Stop();
    if (io_thread_.joinable()) io_thread_.join();
    for (auto& lane : lanes_) lane->join();
  }

  Status Listen() {
    if (!options_.tls_cert_file.empty()) FERRY_RETURN_IF_ERROR(SetUpTls());
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgumentError("invalid host \"" + options_.host + "\": " + ec.message());
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
                              ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, Accept(), asio::detached);
    io_thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ferry-http-io");
      io_.run();
    });
    return OkStatus();
  }

  uint16_t port() const override { return port_; }

  // TLS 1.2 and later with the given certificate chain and key; ALPN picks http/1.1 when the client offers it,
  // else h2 (gRPC).
  Status SetUpTls() {
    tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                      asio::ssl::context::single_dh_use);
    beast::error_code ec;
    tls_->use_certificate_chain_file(options_.tls_cert_file, ec);
    if (ec) return InvalidArgumentError("cannot read --tls-cert " + options_.tls_cert_file + ": " + ec.message());
    tls_->use_private_key_file(options_.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) return InvalidArgumentError("cannot read --tls-key " + options_.tls_key_file + ": " + ec.message());
    SSL_CTX_set_alpn_select_cb(
        tls_->native_handle(),
        [](SSL*, unsigned char const** out, unsigned char* out_len, unsigned char const* in, unsigned int in_len,
           void*) -> int {
          // HTTP/1.1 first: a client that offers both (curl, browsers) wants the REST APIs; gRPC clients offer
          // h2 alone.
          static constexpr unsigned char kProtocols[] = "\x08http/1.1\x02h2";
          unsigned char* selected = nullptr;
          if (SSL_select_next_proto(&selected, out_len, kProtocols, sizeof kProtocols - 1, in, in_len) !=
              OPENSSL_NPN_NEGOTIATED) {
            return SSL_TLSEXT_ERR_NOACK;  // no common protocol: HTTP/1.1, as without ALPN
          }
          *out = selected;
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    return OkStatus();
  }

  void Wait() override {
    std::unique_lock lock(stop_mu_);
    stop_cv_.wait(lock, [&] { return stopped_; });
  }

  void Stop() override {
    {
      std::lock_guard lock(stop_mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    io_.stop();
    stop_cv_.notify_all();
  }

 private:
  asio::awaitable<void> Accept() {
    while (true) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        continue;  // EMFILE and friends: keep serving the connections we have
      }
      std::string peer = socket.remote_endpoint(ec).address().to_string();
      if (ec || connections_->count >= options_.max_connections ||
          connections_->per_peer[peer] >= options_.max_connections_per_peer) {
        socket.close(ec);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io_, Session(beast::tcp_stream(std::move(socket)), std::move(peer)), asio::detached);
    }
  }

  asio::awaitable<void> Session(beast::tcp_stream stream, std::string peer) {
    // Counted on the I/O thread, where every session starts and ends. Held here, so what the locals below (and
    // the sessions this one awaits) refer to outlives them.
    std::shared_ptr<Connections> const connections = connections_;
    ++connections->count;
    ++connections->per_peer[peer];
    struct Guard {
      Connections& connections;
      std::string const& peer;
      ~Guard() {
        --connections.count;
        if (--connections.per_peer[peer] == 0) connections.per_peer.erase(peer);
      }
    } guard{*connections, peer};

    if (tls_) {
      co_await TlsSession(std::move(stream));
      co_return;
    }
    if (options_.http2_connections && co_await HandedOverAsHttp2(stream)) co_return;
    Deadline deadline(connections->deadlines, stream.socket());
    co_await Serve(stream, deadline);
  }

  // A TLS connection: the handshake (ALPN picks the protocol), then HTTP/2 to gRPC through a bridge, or
  // HTTP/1.1 here.
  asio::awaitable<void> TlsSession(beast::tcp_stream tcp) {
    auto tls = std::make_shared<beast::ssl_stream<beast::tcp_stream>>(std::move(tcp), *tls_);
    beast::error_code ec;
    Deadline deadline(connections_->deadlines, beast::get_lowest_layer(*tls).socket());
    deadline.Set(options_.header_timeout);
    co_await tls->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    unsigned char const* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(tls->native_handle(), &alpn, &alpn_len);
    if (std::string_view(reinterpret_cast<char const*>(alpn), alpn_len) == "h2") {
      deadline.Clear();
      if (options_.http2_connections) co_await BridgeHttp2(std::move(tls));
      co_return;
    }
    co_await Serve(*tls, deadline);
  }

  // gRPC takes plain connections only (AddInsecureChannelFromFd), so TLS ends here and the HTTP/2 bytes cross a
  // socket pair to it, in both directions, until either side closes.
  asio::awaitable<void> BridgeHttp2(std::shared_ptr<beast::ssl_stream<beast::tcp_stream>> tls) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) co_return;
    options_.http2_connections(fds[0]);
    auto inner = std::make_shared<asio::local::stream_protocol::socket>(io_, asio::local::stream_protocol(), fds[1]);
    auto close_both = [tls, inner] {
      beast::error_code ignored;
      beast::get_lowest_layer(*tls).socket().close(ignored);
      inner->close(ignored);
    };
    asio::co_spawn(io_, Pump(*inner, *tls, inner, tls), [close_both](std::exception_ptr) { close_both(); });
    co_await Pump(*tls, *inner, tls, inner);
    close_both();
  }

  // Copies bytes from one stream to the other until either fails or closes; the keep_ pointers hold both alive.
  template <class From, class To>
  static asio::awaitable<void> Pump(From& from, To& to, std::shared_ptr<void> keep_from,
                                    std::shared_ptr<void> keep_to) {
    std::array<char, 16 * 1024> buf;
    while (true) {
      beast::error_code ec;
      std::size_t n = co_await from.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      co_await asio::async_write(to, asio::buffer(buf.data(), n), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
  }

  // HTTP/1.1 requests on one connection, plain or TLS, until it closes or a request says so.
  template <class Stream>
  asio::awaitable<void> Serve(Stream& stream, Deadline& deadline) {
    auto& lowest = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    for (bool first = true;; first = false) {
      http::request_parser<http::string_body> parser;
      // With a limit per target, the header is read without one (Beast checks Content-Length against the limit
      // as it reads the header), then the target's limit is applied below. (Not boost::none: Beast 1.81 compares
      // the length with the optional, and anything is more than none.)
      if (options_.body_limit_for) {
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      } else {
        parser.body_limit(options_.max_body_bytes);
      }
      parser.header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
      deadline.Set(first ? options_.header_timeout : options_.read_timeout);
      beast::error_code ec;
      co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      std::size_t body_limit = options_.max_body_bytes;
      if (!ec && options_.body_limit_for) {
        auto target = parser.get().target();
        body_limit = options_.body_limit_for(std::string_view(target.data(), target.size()));
        auto length = parser.content_length();
        if (length && *length > body_limit) {
          ec = http::error::body_limit;
        } else {
          parser.body_limit(body_limit);  // a chunked body is held to it as it arrives
        }
      }
      if (!ec && !parser.is_done()) {
        deadline.Set(options_.read_timeout);
        co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {
        // (Closed by its deadline: the read fails, aborted, or finds no socket.)
        if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
            ec == asio::error::operation_aborted || !lowest.socket().is_open()) {
          break;
        }
        // A malformed or oversized request: answer it, then close, since the stream is out of step.
        Status st = ec == http::error::body_limit
                        ? Status(StatusCode::kInvalidArgument, "request body exceeds the limit of " +
                                                                   std::to_string(body_limit) + " bytes")
                        : Status(StatusCode::kInvalidArgument, "malformed HTTP request: " + ec.message());
        bool too_large = ec == http::error::body_limit || ec == http::error::header_limit;
        HttpResponse res = too_large ? ErrorResponse(st, 413) : ErrorResponse(st);
        co_await Write(stream, deadline, std::move(res), 11, false);
        break;
      }
      auto req = parser.release();
      unsigned version = req.version();
      bool keep_alive = req.keep_alive();
      HttpRequest request = ToRequest(std::move(req));
      deadline.Clear();
      // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
      std::optional<HttpResponse> res;
      // While a handler has the request, the I/O thread watches the connection for the client's leaving.
      bool watch = options_.watch_client && options_.watch_client(request) && buffer.size() == 0;
      if (options_.fast_handler) res = co_await HandleFast(request, watch ? &lowest.socket() : nullptr);
      if (!res) {
        std::size_t lane = options_.lane ? options_.lane(request) : 0;
        std::shared_ptr<bool> handled;
        if (watch) {
          request.client_gone = std::make_shared<std::atomic<bool>>(false);
          handled = std::make_shared<bool>(false);
          asio::co_spawn(io_, WatchForHangUp(lowest.socket(), request.client_gone, handled), asio::detached);
        }
        res = co_await asio::co_spawn(
            *lanes_[std::min(lane, lanes_.size() - 1)],
            [this, &request]() -> asio::awaitable<HttpResponse> {
              try {
                co_return handler_(request);
              } catch (std::exception const& e) {
                co_return ErrorResponse(InternalError(std::string("internal error: ") + e.what()));
              }
            },
            asio::use_awaitable);
        if (handled) {
          *handled = true;
          beast::error_code ignored;
          lowest.socket().cancel(ignored);  // ends the watch; nothing else waits on the socket now
        }
      }
      // Back on the I/O thread: co_spawn resumes us on the session's executor.
      if (!co_await Write(stream, deadline, *std::move(res), version, keep_alive) || !keep_alive) break;
    }
    beast::error_code ignored;
    lowest.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Waits for the socket to become readable while a handler runs: end of stream or an error means the client
  // left (`gone`); bytes (a pipelined request) end the watch, as nothing can be told from them. `handled` says
  // the handler finished and the session has the socket again, so a late wake-up must not touch it.
  asio::awaitable<void> WatchForHangUp(tcp::socket& socket, std::shared_ptr<std::atomic<bool>> gone,
                                       std::shared_ptr<bool> handled) {
    beast::error_code ec;
    co_await socket.async_wait(tcp::socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
    if (*handled || ec == asio::error::operation_aborted) co_return;
    char byte;
    ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (ec || n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) gone->store(true);
  }

  // The fast handler's answer, or nullopt when it left the request to the worker pool. The reply wakes the
  // session through a timer that never expires by itself (Asio 1.74 has no channels). With `watch`, the
  // connection is watched while the answer is pending (a call may wait its turn for a busy function).
  asio::awaitable<std::optional<HttpResponse>> HandleFast(HttpRequest& request, tcp::socket* watch) {
    struct Waiting {
      explicit Waiting(asio::io_context& io) : wake(io, asio::steady_timer::time_point::max()) {}
      asio::steady_timer wake;
      std::optional<HttpResponse> response;
    };
    auto waiting = std::make_shared<Waiting>(io_);
    bool taken = false;
    if (watch != nullptr) {
      request.client_gone = std::make_shared<std::atomic<bool>>(false);
      request.queued = std::make_shared<bool>(false);
    }
    try {
      taken = options_.fast_handler(request, io_, [waiting](HttpResponse res) {
        waiting->response = std::move(res);
        waiting->wake.cancel();
      });
    } catch (std::exception const& e) {
      co_return ErrorResponse(InternalError(std::string("internal error: ") + e.what()));
    }
    if (!taken) {
      request.client_gone.reset();
      co_return std::nullopt;
    }
    std::shared_ptr<bool> handled;
    if (watch != nullptr && *request.queued && !waiting->response) {
      handled = std::make_shared<bool>(false);
      asio::co_spawn(io_, WatchForHangUp(*watch, request.client_gone, handled), asio::detached);
    }
    while (!waiting->response) {
      beast::error_code ec;
      co_await waiting->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (handled) {
      *handled = true;
      beast::error_code ignored;
      watch->cancel(ignored);  // ends the watch; nothing else waits on the socket now
    }
    co_return std::move(waiting->response);
  }

  // Peeks at the first bytes of a new connection: the HTTP/2 preface hands the socket to http2_connections.
  asio::awaitable<bool> HandedOverAsHttp2(beast::tcp_stream& stream) {
    static constexpr std::string_view kPreface = "PRI * HTTP/2.0";
    auto& socket = stream.socket();
    asio::steady_timer deadline(io_, options_.read_timeout);
    deadline.async_wait([&socket](beast::error_code ec) {
      if (!ec) socket.cancel();
    });
    char peek[kPreface.size()];
    ssize_t n = 0;
    for (int tries = 0; tries < 1000; ++tries) {
      beast::error_code ec;
      co_await socket.async_wait(tcp::socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      n = ::recv(socket.native_handle(), peek, sizeof peek, MSG_PEEK);
      // Decide once the preface is whole, or as soon as the bytes cannot begin it.
      if (n <= 0 || static_cast<std::size_t>(n) == sizeof peek ||
          std::string_view(peek, static_cast<std::size_t>(n)) != kPreface.substr(0, static_cast<std::size_t>(n))) {
        break;
      }
      asio::steady_timer pause(io_, std::chrono::milliseconds(1));  // a partial preface: wait for the rest
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    deadline.cancel();
    if (n != static_cast<ssize_t>(sizeof peek) || std::string_view(peek, sizeof peek) != kPreface) co_return false;
    int fd = ::dup(socket.native_handle());
    beast::error_code ignored;
    socket.close(ignored);
    if (fd >= 0) options_.http2_connections(fd);
    co_return true;
  }

  template <class Stream>
  asio::awaitable<bool> Write(Stream& stream, Deadline& deadline, HttpResponse res, unsigned version, bool keep_alive) {
    if (res.file) co_return co_await WriteFile(stream, deadline, std::move(res), version, keep_alive);
    http::response<http::string_body> out{static_cast<http::status>(res.status), version};
    out.set(http::field::server, "ferry");
    if (!res.content_type.empty()) out.set(http::field::content_type, res.content_type);
    for (auto const& [k, v] : res.headers) out.set(k, v);
    out.keep_alive(keep_alive);
    out.body() = std::move(res.body);
    out.prepare_payload();
    deadline.Set(options_.read_timeout);
    beast::error_code ec;
    co_await http::async_write(stream, out, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  template <class Stream>
  asio::awaitable<bool> WriteFile(Stream& stream, Deadline& deadline, HttpResponse res, unsigned version,
                                  bool keep_alive) {
    http::response<http::basic_file_body<SliceFile>> out{static_cast<http::status>(res.status), version};
    out.set(http::field::server, "ferry");
    if (!res.content_type.empty()) out.set(http::field::content_type, res.content_type);
    for (auto const& [k, v] : res.headers) out.set(k, v);
    out.keep_alive(keep_alive);
    beast::error_code ec;
    out.body().reset(SliceFile(std::move(res.file)), ec);
    out.prepare_payload();
    // A slow reader may take its time with a large body, but must keep taking it.
    http::response_serializer<http::basic_file_body<SliceFile>> serializer(out);
    while (!ec && !serializer.is_done()) {
      deadline.Set(options_.read_timeout);
      co_await http::async_write_some(stream, serializer, asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return !ec;
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  asio::io_context own_io_{1};  // unless options_.io names another
  asio::io_context& io_;
  std::unique_ptr<asio::ssl::context> tls_;  // set: every connection speaks TLS
  std::vector<std::unique_ptr<asio::thread_pool>> lanes_;
  tcp::acceptor acceptor_;
  std::shared_ptr<Connections> connections_ = std::make_shared<Connections>(io_);
  std::thread io_thread_;
  uint16_t port_ = 0;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;  // GUARDED_BY(stop_mu_)
};

}  // namespace

FileSlice::~FileSlice() {
  if (fd >= 0) ::close(fd);
}

std::string HttpRequest::Query(std::string_view name) const {
  for (auto const& [k, v] : query) {
    if (k == name) return v;
  }
  return {};
}

std::string HttpRequest::Header(std::string_view lowercase_name) const {
  for (auto const& [k, v] : headers) {
    if (k == lowercase_name) return v;
  }
  return {};
}

int HttpStatusFor(StatusCode code) {
  // https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnknown: return 500;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kResourceExhausted: return 429;
    case StatusCode::kFailedPrecondition: return 400;
    case StatusCode::kAborted: return 409;
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kUnimplemented: return 501;
    case StatusCode::kInternal: return 500;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDataLoss: return 500;
    case StatusCode::kUnauthenticated: return 401;
  }
  return 500;
}

HttpResponse ErrorResponse(Status const& status) { return ErrorResponse(status, HttpStatusFor(status.code())); }

HttpResponse ErrorResponse(Status const& status, int http_status) {
  nlohmann::ordered_json body;
  body["error"] = {{"code", http_status}, {"message", status.message()}, {"status", StatusCodeName(status.code())}};
  // A message may quote what a client sent; bytes that are not UTF-8 are replaced, never thrown on.
  return HttpResponse{http_status, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                      {}};
}

HttpResponse MethodNotAllowed(HttpRequest const& req, char const* allowed) {
  auto res = ErrorResponse(Status(StatusCode::kUnimplemented, "Method " + req.method + " is not allowed on " +
                                                                  req.path + "; use " + allowed),
                           405);
  res.headers.emplace_back("Allow", allowed);
  return res;
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions const& options, HttpHandler handler) {
  auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
  if (auto st = server->Listen(); !st.ok()) return st;
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace ferry
