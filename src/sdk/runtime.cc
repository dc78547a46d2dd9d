// The C++ functions runtime: serves one exported function over the Functions Framework HTTP contract
// (https://github.com/GoogleCloudPlatform/functions-framework), so Ferry's supervisor treats C++ instances like
// Node.js and Python ones. Ferry bounds an instance's concurrent requests, so a thread per connection is enough.
#include <utility>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <type_traits>

#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "ferry/function.h"
#include "sdk/invocation.h"

namespace ferry {

struct Functions::Impl {
  std::map<std::string, EventFunction> events;
  std::map<std::string, HttpFunction> https;
};

Functions::Functions() : impl_(std::make_unique<Impl>()) {}
Functions::~Functions() = default;
Functions::Functions(Functions&&) noexcept = default;
Functions& Functions::operator=(Functions&&) noexcept = default;

Functions& Functions::Event(std::string name, EventFunction fn) {
  impl_->events[std::move(name)] = std::move(fn);
  return *this;
}

Functions& Functions::Http(std::string name, HttpFunction fn) {
  impl_->https[std::move(name)] = std::move(fn);
  return *this;
}

std::string Event::ToString() const {
  if (!raw.empty()) return raw;
  nlohmann::json j;
  j["data"] = Base64Encode(data);
  j["attributes"] = attributes;
  j["messageId"] = message_id;
  j["publishTime"] = publish_time;
  if (!ordering_key.empty()) j["orderingKey"] = ordering_key;
  j["deliveryAttempt"] = delivery_attempt;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Context::ToString() const {
  nlohmann::json j{{"event_id", event_id},
                   {"timestamp", timestamp},
                   {"event_type", event_type},
                   {"resource", resource},
                   {"execution_id", execution_id}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace sdk {
namespace {
thread_local std::string const* current_execution_id = nullptr;
}  // namespace

std::string const* CurrentExecutionId() { return current_execution_id; }

InvocationScope::InvocationScope(std::string execution_id)
    : execution_id_(std::move(execution_id)), previous_(current_execution_id) {
  current_execution_id = &execution_id_;
}

InvocationScope::~InvocationScope() { current_execution_id = previous_; }

}  // namespace sdk

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

std::string Str(json const& j, char const* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A Pub/Sub message object ({"data", "attributes", "messageId", ...}) into an Event.
void FillFromMessage(json const& m, Event& e) {
  if (!m.is_object()) return;
  e.data = Base64Decode(Str(m, "data")).value_or(std::string());
  if (auto it = m.find("attributes"); it != m.end() && it->is_object()) {
    for (auto const& [k, v] : it->items()) {
      if (v.is_string()) e.attributes[k] = v.get<std::string>();
    }
  }
  e.message_id = Str(m, "messageId");
  if (e.message_id.empty()) e.message_id = Str(m, "message_id");
  e.publish_time = Str(m, "publishTime");
  if (e.publish_time.empty()) e.publish_time = Str(m, "publish_time");
  e.ordering_key = Str(m, "orderingKey");
  if (auto it = m.find("deliveryAttempt"); it != m.end() && it->is_number_integer()) {
    e.delivery_attempt = it->get<int>();
  }
}

std::string Header(http::request<http::string_body> const& req, std::string_view name) {
  auto it = req.find(beast::string_view(name.data(), name.size()));
  return it == req.end() ? std::string() : std::string(it->value());
}

// Builds (event, context) from a legacy background-event body or a CloudEvent (binary or structured mode).
bool DecodeEvent(http::request<http::string_body> const& req, Event& event, Context& context, std::string& error) {
  json body = json::parse(req.body(), nullptr, false);
  std::string ce_id = Header(req, "ce-id");
  if (!ce_id.empty()) {  // binary-mode CloudEvent: attributes in headers, data in the body
    context.event_id = ce_id;
    context.event_type = Header(req, "ce-type");
    context.resource = Header(req, "ce-source");
    context.timestamp = Header(req, "ce-time");
    if (body.is_object() && body.contains("message")) {
      FillFromMessage(body["message"], event);
      if (auto it = body.find("deliveryAttempt"); it != body.end() && it->is_number_integer()) {
        event.delivery_attempt = it->get<int>();
      }
    } else {
      event.data = req.body();
    }
    event.raw = req.body();
    return true;
  }
  if (!body.is_object()) {
    error = "the request body is not a JSON object";
    return false;
  }
  if (body.contains("specversion")) {  // structured-mode CloudEvent
    context.event_id = Str(body, "id");
    context.event_type = Str(body, "type");
    context.resource = Str(body, "source");
    context.timestamp = Str(body, "time");
    json const& data = body.contains("data") ? body["data"] : json();
    if (data.is_object() && data.contains("message")) FillFromMessage(data["message"], event);
    event.raw = data.dump(-1, ' ', false, json::error_handler_t::replace);
    return true;
  }
  // Legacy background event: {"context": {...}, "data": {...}}, or the older flat form with the context
  // fields at the top level.
  json const& ctx = body.contains("context") && body["context"].is_object() ? body["context"] : body;
  context.event_id = Str(ctx, "eventId");
  context.timestamp = Str(ctx, "timestamp");
  context.event_type = Str(ctx, "eventType");
  if (auto it = ctx.find("resource"); it != ctx.end()) {
    context.resource = it->is_object() ? Str(*it, "name") : it->is_string() ? it->get<std::string>() : "";
  }
  json const& data = body.contains("data") ? body["data"] : json();
  FillFromMessage(data, event);
  if (event.message_id.empty()) event.message_id = context.event_id;
  if (event.publish_time.empty()) event.publish_time = context.timestamp;
  event.raw = data.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

std::string NewExecutionId() {
  static std::atomic<uint64_t> counter{0};
  return "local-" + std::to_string(++counter);
}

http::response<http::string_body> Answer(unsigned version, int status, std::string body,
                                         std::string const& execution_id) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set("Function-Execution-Id", execution_id);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// Runs the user's code with the guide's try_catch_log wrapping.
template <typename F>
std::pair<bool, std::string> Guarded(std::string const& name, std::string const& started, F&& call) {
  log::Info("Started " + name + "! " + started);
  try {
    call();
    log::Info("Completed " + name + "!");
    return {true, ""};
  } catch (std::exception const& e) {
    std::string what = e.what();
    log::Error("Failed " + name + ": " + what + " (execution " + *sdk::CurrentExecutionId() + ")");
    return {false, what};
  } catch (...) {
    log::Error("Failed " + name + ": unknown exception (execution " + *sdk::CurrentExecutionId() + ")");
    return {false, "unknown exception"};
  }
}

// Compares in time that depends on the length only, so the answer's timing tells nothing of a guess. (By hand: the
// SDK links nothing but Boost's headers, and one loop is all this needs.)
bool SameSecret(std::string const& given, std::string const& want) {
  if (given.size() != want.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ want[i]);
  return diff == 0;
}

class Server {
 public:
  Server(std::string target, EventFunction event_fn, HttpFunction http_fn)
      : target_(std::move(target)), event_fn_(std::move(event_fn)), http_fn_(std::move(http_fn)) {
    if (char const* secret = std::getenv("FERRY_INSTANCE_SECRET"); secret != nullptr) secret_ = secret;
  }

  template <typename Socket>
  void Serve(Socket socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    // Answers go out at once: with Nagle's algorithm a response written in two pieces waits for the caller's
    // delayed ACK, about 40 ms a call on a keep-alive connection.
    if constexpr (std::is_same_v<Socket, tcp::socket>) socket.set_option(tcp::no_delay(true), ec);
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      auto req = parser.release();
      auto res = Handle(req);
      res.keep_alive(req.keep_alive());
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) break;
    }
    socket.shutdown(Socket::shutdown_both, ec);
  }

 private:
  http::response<http::string_body> Handle(http::request<http::string_body> const& req) {
    // Under Ferry, only Ferry may call: it sends the instance's secret (see FERRY_INSTANCE_SECRET).
    if (!secret_.empty()) {
      std::string given = Header(req, "x-ferry-instance-secret");
      if (!SameSecret(given, secret_)) {
        http::response<http::string_body> res{http::status::forbidden, req.version()};
        res.body() = "Forbidden: this instance serves Ferry only\n";
        res.prepare_payload();
        return res;
      }
    }
    std::string execution_id = Header(req, "function-execution-id");
    if (execution_id.empty()) execution_id = NewExecutionId();
    sdk::InvocationScope scope(execution_id);
    if (http_fn_) {
      Request request;
      request.method = std::string(req.method_string());
      std::string_view target(req.target().data(), req.target().size());
      auto q = target.find('?');
      request.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
      for (auto const& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "x-ferry-instance-secret") continue;  // Ferry's, not the caller's
        request.headers[name] = std::string(f.value());
      }
      request.body = req.body();
      Response response;
      auto [ok, error] = Guarded(target_, "Request: " + request.method + " " + request.path,
                                 [&] { response = http_fn_(request); });
      if (!ok) return Answer(req.version(), 500, error, execution_id);
      http::response<http::string_body> res{static_cast<http::status>(response.status), req.version()};
      for (auto const& [k, v] : response.headers) res.set(k, v);
      res.set("Function-Execution-Id", execution_id);
      res.body() = std::move(response.body);
      res.prepare_payload();
      return res;
    }
    Event event;
    Context context;
    context.execution_id = execution_id;
    std::string error;
    if (!DecodeEvent(req, event, context, error)) {
      log::Error("Bad event for " + target_ + ": " + error);
      return Answer(req.version(), 400, error, execution_id);
    }
    auto [ok, failure] = Guarded(target_, "Event: " + event.ToString() + ", Context: " + context.ToString(),
                                 [&] { event_fn_(event, context); });
    return ok ? Answer(req.version(), 200, "OK", execution_id) : Answer(req.version(), 500, failure, execution_id);
  }

  std::string target_;
  std::string secret_;  // FERRY_INSTANCE_SECRET: when set, a request without it is refused
  EventFunction event_fn_;
  HttpFunction http_fn_;
};

// Accepts for ever, a thread per connection; 1 when it cannot listen.
template <typename Protocol>
int Listen(asio::io_context& io, typename Protocol::endpoint const& endpoint, std::string const& where,
           std::shared_ptr<Server> const& server) {
  beast::error_code ec;
  typename Protocol::acceptor acceptor(io);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec && std::is_same_v<Protocol, tcp>) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "ferry: cannot listen on %s: %s\n", where.c_str(), ec.message().c_str());
    return 1;
  }
  while (true) {
    typename Protocol::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) continue;
    std::thread([server, s = std::move(socket)]() mutable { server->Serve(std::move(s)); }).detach();
  }
}

}  // namespace

int Run(int /*argc*/, char** /*argv*/, Functions const& functions) {
  std::signal(SIGPIPE, SIG_IGN);
  char const* target_env = std::getenv("FUNCTION_TARGET");
  std::string target = target_env ? target_env : "";
  auto const& impl = functions.impl();
  EventFunction event_fn;
  HttpFunction http_fn;
  if (auto it = impl.events.find(target); it != impl.events.end()) event_fn = it->second;
  if (auto it = impl.https.find(target); it != impl.https.end()) http_fn = it->second;
  if (!event_fn && !http_fn) {
    std::string exported;
    for (auto const& [name, fn] : impl.events) exported += (exported.empty() ? "" : ", ") + name;
    for (auto const& [name, fn] : impl.https) exported += (exported.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "ferry: FUNCTION_TARGET \"%s\" is not exported by this program (it exports: %s)\n",
                 target.c_str(), exported.empty() ? "nothing" : exported.c_str());
    return 1;
  }
  auto server = std::make_shared<Server>(target, event_fn, http_fn);
  asio::io_context io;
  // Under Ferry: the Unix socket it names (less work per call than loopback TCP, and only its user can connect).
  if (char const* path = std::getenv("FERRY_UNIX_SOCKET"); path != nullptr && *path != '\0') {
    ::unlink(path);
    return Listen<asio::local::stream_protocol>(io, asio::local::stream_protocol::endpoint(path), path, server);
  }
  char const* port_env = std::getenv("PORT");
  int port = port_env ? std::atoi(port_env) : 8080;
  return Listen<tcp>(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                     "port " + std::to_string(port), server);
}

}  // namespace ferry
