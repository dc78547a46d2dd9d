#include "cli/http_client.h"

#include <openssl/ssl.h>

#include <cctype>
#include <optional>
#include <type_traits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/status_macros.h"

namespace ferry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// An answer as the CLI reads it: status, body, headers with lowercased names.
HttpResult ToResult(http::response<http::string_body> res) {
  HttpResult result{static_cast<int>(res.result_int()), std::move(res.body()), {}};
  for (auto const& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  return result;
}

struct Target {
  std::string endpoint, host, port, authorization;
};

// One keep-alive connection, plain (beast::tcp_stream) or TLS (beast::ssl_stream over it).
template <class Stream>
class BeastHttpClient : public HttpClient {
 public:
  explicit BeastHttpClient(Target target) : target_(std::move(target)) {
    if constexpr (kTls) {
      // The system's CA store (SSL_CERT_FILE / SSL_CERT_DIR point OpenSSL at another), and the host checked
      // against the certificate.
      tls_.set_default_verify_paths();
      tls_.set_verify_mode(asio::ssl::verify_peer);
    }
  }

  StatusOr<HttpResult> Send(std::string const& method, std::string const& target, std::string const& body,
                            std::string const& content_type, HttpHeaders const& headers) override {
    // One retry on a fresh connection: the daemon may have closed an idle keep-alive connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
      beast::error_code ec;
      if (!stream_) {
        if (Status st = Connect(); !st.ok()) return st;
      }
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, target_.host);
      req.set(http::field::user_agent, "ferry-cli");
      if (!target_.authorization.empty()) req.set(http::field::authorization, target_.authorization);
      // Also on a POST without a body: Ferry refuses mutating calls that are not JSON (a browser's cross-site
      // "simple request" is not).
      bool mutating = method == "POST" || method == "PUT" || method == "PATCH";
      if ((!body.empty() || mutating) && !content_type.empty()) req.set(http::field::content_type, content_type);
      for (auto const& [k, v] : headers) req.set(k, v);
      req.body() = body;
      req.prepare_payload();
      http::write(*stream_, req, ec);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      if (!ec) http::read(*stream_, buffer, parser, ec);
      if (ec) {
        stream_.reset();
        if (attempt == 0) continue;
        return UnavailableError("request to " + target_.endpoint + " failed: " + ec.message());
      }
      auto res = parser.release();
      if (!res.keep_alive()) stream_.reset();
      return ToResult(std::move(res));
    }
    return UnavailableError("request to " + target_.endpoint + " failed");
  }

 private:
  static constexpr bool kTls = std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>;

  Status Connect() {
    beast::error_code ec;
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(target_.host, target_.port, ec);
    if constexpr (kTls) {
      stream_.emplace(io_, tls_);
      SSL_set_tlsext_host_name(stream_->native_handle(), target_.host.c_str());
      stream_->set_verify_callback(asio::ssl::host_name_verification(target_.host));
      static constexpr unsigned char kAlpn[] = "\x08http/1.1";
      SSL_set_alpn_protos(stream_->native_handle(), kAlpn, sizeof kAlpn - 1);
    } else {
      stream_.emplace(io_);
    }
    if (!ec) beast::get_lowest_layer(*stream_).connect(results, ec);
    if (!ec) beast::get_lowest_layer(*stream_).socket().set_option(asio::ip::tcp::no_delay(true), ec);
    if constexpr (kTls) {
      if (!ec) stream_->handshake(asio::ssl::stream_base::client, ec);
    }
    if (ec) {
      stream_.reset();
      return UnavailableError("cannot reach ferry at " + target_.endpoint + ": " + ec.message());
    }
    return OkStatus();
  }

  Target target_;
  asio::io_context io_;
  asio::ssl::context tls_{asio::ssl::context::tls_client};
  std::optional<Stream> stream_;
};

// "http(s)://host:port" or "host:port": the target, and whether it speaks TLS.
StatusOr<std::pair<Target, bool>> ParseEndpoint(std::string const& endpoint, std::string const& token) {
  std::string rest = endpoint;
  bool tls = rest.rfind("https://", 0) == 0;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (tls) rest = rest.substr(8);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return InvalidArgumentError("endpoint must be http(s)://HOST:PORT, got \"" + endpoint + "\"");
  }
  Target target{endpoint, rest.substr(0, colon), rest.substr(colon + 1), token.empty() ? "" : "Bearer " + token};
  return std::pair{std::move(target), tls};
}

// SendOnce's exchange, as one coroutine: every step async, so the caller's io_context.run_for bounds it all.
template <class Stream>
asio::awaitable<void> Exchange(Stream& stream, Target const& target, http::request<http::string_body>& req,
                               http::response_parser<http::string_body>& parser, beast::error_code& ec,
                               bool& done) {
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto results = co_await resolver.async_resolve(target.host, target.port, token);
  if (!ec) co_await beast::get_lowest_layer(stream).async_connect(results, token);
  if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
    if (!ec) co_await stream.async_handshake(asio::ssl::stream_base::client, token);
  }
  if (!ec) co_await http::async_write(stream, req, token);
  beast::flat_buffer buffer;
  if (!ec) co_await http::async_read(stream, buffer, parser, token);
  done = true;
}

template <class Stream>
StatusOr<HttpResult> SendOnceOver(Target const& target, std::string const& method, std::string const& path,
                                  std::string const& body, std::string const& content_type,
                                  HttpHeaders const& headers, std::chrono::milliseconds timeout) {
  asio::io_context io;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::optional<Stream> stream;
  if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
    tls.set_default_verify_paths();
    tls.set_verify_mode(asio::ssl::verify_peer);
    stream.emplace(io, tls);
    SSL_set_tlsext_host_name(stream->native_handle(), target.host.c_str());
    stream->set_verify_callback(asio::ssl::host_name_verification(target.host));
  } else {
    stream.emplace(io);
  }
  http::request<http::string_body> req{http::string_to_verb(method), path, 11};
  req.set(http::field::host, target.host);
  req.set(http::field::user_agent, "ferry");
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  for (auto const& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024);
  beast::error_code ec;
  bool done = false;
  asio::co_spawn(io, Exchange(*stream, target, req, parser, ec, done), asio::detached);
  io.run_for(timeout);
  if (!done) {  // past the deadline: end the exchange, and let the coroutine see it end
    beast::get_lowest_layer(*stream).close();
    io.restart();
    io.run();
    return Status(StatusCode::kDeadlineExceeded, "request to " + target.endpoint + " took longer than " +
                                                     std::to_string(timeout.count()) + " ms");
  }
  if (ec) return UnavailableError("request to " + target.endpoint + " failed: " + ec.message());
  return ToResult(parser.release());
}

}  // namespace

StatusOr<std::unique_ptr<HttpClient>> HttpClient::Make(std::string const& endpoint, std::string token) {
  FERRY_ASSIGN_OR_RETURN(auto parsed, ParseEndpoint(endpoint, token));
  auto& [target, tls] = parsed;
  if (tls) return std::unique_ptr<HttpClient>(new BeastHttpClient<beast::ssl_stream<beast::tcp_stream>>(target));
  return std::unique_ptr<HttpClient>(new BeastHttpClient<beast::tcp_stream>(target));
}

StatusOr<HttpResult> SendOnce(std::string const& endpoint, std::string const& method, std::string const& target,
                              std::string const& body, std::string const& content_type, HttpHeaders const& headers,
                              std::chrono::milliseconds timeout) {
  FERRY_ASSIGN_OR_RETURN(auto parsed, ParseEndpoint(endpoint, ""));
  if (parsed.second) {
    return SendOnceOver<beast::ssl_stream<beast::tcp_stream>>(parsed.first, method, target, body, content_type,
                                                               headers, timeout);
  }
  return SendOnceOver<beast::tcp_stream>(parsed.first, method, target, body, content_type, headers, timeout);
}

}  // namespace ferry
