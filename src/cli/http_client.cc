#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace ferry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class BeastHttpClient : public HttpClient {
 public:
  BeastHttpClient(std::string endpoint, std::string host, std::string port, std::string token)
      : endpoint_(std::move(endpoint)),
        host_(std::move(host)),
        port_(std::move(port)),
        authorization_(token.empty() ? "" : "Bearer " + token),
        stream_(io_) {}

  StatusOr<HttpResult> Send(std::string const& method, std::string const& target, std::string const& body,
                            std::string const& content_type) override {
    // One retry on a fresh connection: the daemon may have closed an idle keep-alive connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
      beast::error_code ec;
      if (!connected_) {
        tcp::resolver resolver(io_);
        auto results = resolver.resolve(host_, port_, ec);
        if (!ec) stream_.connect(results, ec);
        if (ec) return UnavailableError("cannot reach ferry at " + endpoint_ + ": " + ec.message());
        connected_ = true;
      }
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      req.set(http::field::host, host_);
      req.set(http::field::user_agent, "ferry-cli");
      if (!authorization_.empty()) req.set(http::field::authorization, authorization_);
      // Also on a POST without a body: Ferry refuses mutating calls that are not JSON (a browser's cross-site
      // "simple request" is not).
      bool mutating = method == "POST" || method == "PUT" || method == "PATCH";
      if ((!body.empty() || mutating) && !content_type.empty()) req.set(http::field::content_type, content_type);
      req.body() = body;
      req.prepare_payload();
      http::write(stream_, req, ec);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      if (!ec) http::read(stream_, buffer, parser, ec);
      if (ec) {
        stream_.close();
        connected_ = false;
        if (attempt == 0) continue;
        return UnavailableError("request to " + endpoint_ + " failed: " + ec.message());
      }
      auto res = parser.release();
      if (!res.keep_alive()) {
        stream_.close();
        connected_ = false;
      }
      return HttpResult{static_cast<int>(res.result_int()), std::move(res.body())};
    }
    return UnavailableError("request to " + endpoint_ + " failed");
  }

 private:
  std::string endpoint_, host_, port_, authorization_;
  asio::io_context io_;
  beast::tcp_stream stream_;
  bool connected_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<HttpClient>> HttpClient::Make(std::string const& endpoint, std::string token) {
  std::string rest = endpoint;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (rest.rfind("https://", 0) == 0) return InvalidArgumentError("https endpoints are not supported: " + endpoint);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return InvalidArgumentError("endpoint must be http://HOST:PORT, got \"" + endpoint + "\"");
  }
  return std::unique_ptr<HttpClient>(
      new BeastHttpClient(endpoint, rest.substr(0, colon), rest.substr(colon + 1), std::move(token)));
}

}  // namespace ferry
