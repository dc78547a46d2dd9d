#include "push/push_delivery.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/deadline_stream.h"
#include "common/time_util.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using Steady = std::chrono::steady_clock;

struct Endpoint {
  std::string host, port, target;
};

// "http://host[:port][/path]". https is not spoken: Ferry pushes to services on its own network.
StatusOr<Endpoint> ParseEndpoint(std::string const& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.rfind(kHttp, 0) != 0) return InvalidArgumentError("Ferry pushes over http:// only, not to " + url);
  std::string rest = url.substr(kHttp.size());
  Endpoint e;
  auto slash = rest.find('/');
  e.target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string authority = rest.substr(0, slash);
  auto colon = authority.rfind(':');
  e.host = authority.substr(0, colon);
  e.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  if (e.host.empty()) return InvalidArgumentError("no host in push endpoint " + url);
  return e;
}

// A TCP connection made within the deadline; -1 with `error` set otherwise.
int Connect(Endpoint const& e, Steady::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(e.host.c_str(), e.port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve " + e.host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  error = "cannot connect to " + e.host + ":" + e.port;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
      pollfd p{fd, POLLOUT, 0};
      err = ETIMEDOUT;
      socklen_t len = sizeof err;
      if (left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0) {
      error += std::string(": ") + std::strerror(err);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

// One POST; the HTTP status, or an error when the endpoint gave no answer in time.
StatusOr<int> Post(Endpoint const& e, PushDelivery::Request const& request, Steady::time_point deadline) {
  std::string error;
  int fd = Connect(e, deadline, error);
  if (fd < 0) return UnavailableError(error);
  http::request<http::string_body> req{http::verb::post, e.target, 11};
  req.set(http::field::host, e.host);
  req.set(http::field::user_agent, "ferry-push");
  req.set(http::field::content_type, "application/json");
  for (auto const& [k, v] : request.headers) req.set(k, v);
  req.body() = request.body;
  req.keep_alive(false);
  req.prepare_payload();
  DeadlineStream stream(fd, deadline);
  beast::error_code ec;
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  if (!ec) http::read(stream, buffer, parser, ec);
  ::close(fd);
  if (ec == beast::error::timeout) return UnavailableError("the push endpoint did not answer within the ack deadline");
  if (ec) return UnavailableError("push to " + e.host + ":" + e.port + " failed: " + ec.message());
  return static_cast<int>(parser.get().result_int());
}

}  // namespace

struct PushDelivery::Worker {
  Subscription sub;
  std::atomic<bool> stop{false};
  std::thread thread;
};

PushDelivery::PushDelivery(Broker& broker, PushOptions options) : broker_(broker), options_(options) {}

PushDelivery::~PushDelivery() { Stop(); }

void PushDelivery::Start() {
  manager_ = std::thread([this] { ManageLoop(); });
}

void PushDelivery::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (manager_.joinable()) manager_.join();
}

PushDelivery::Request PushDelivery::MakeRequest(Subscription const& sub, ReceivedMessage const& received) {
  Request r;
  auto const& m = received.message;
  if (sub.push_config.no_wrapper) {
    r.body = m.data;
    if (sub.push_config.write_metadata) {
      r.headers.emplace_back("x-goog-pubsub-subscription-name", sub.name);
      r.headers.emplace_back("x-goog-pubsub-message-id", m.message_id);
      r.headers.emplace_back("x-goog-pubsub-publish-time", FormatRfc3339(m.publish_time_ms));
      if (!m.ordering_key.empty()) r.headers.emplace_back("x-goog-pubsub-ordering-key", m.ordering_key);
      for (auto const& [k, v] : m.attributes) r.headers.emplace_back(k, v);
    }
    return r;
  }
  Json message = MessageToJson(m);
  // Pub/Sub's push body names these both ways.
  message["message_id"] = m.message_id;
  message["publish_time"] = FormatRfc3339(m.publish_time_ms);
  Json body = {{"message", std::move(message)}, {"subscription", sub.name}};
  if (received.delivery_attempt > 0) body["deliveryAttempt"] = received.delivery_attempt;
  r.body = body.dump();
  return r;
}

void PushDelivery::ManageLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    Rescan();
    lock.lock();
    cv_.wait_for(lock, options_.rescan, [&] { return stopping_; });
  }
  lock.unlock();
  for (auto& [name, worker] : workers_) worker->stop = true;
  for (auto& [name, worker] : workers_) worker->thread.join();
  workers_.clear();
}

void PushDelivery::Rescan() {
  auto subs = broker_.ListPushSubscriptions();
  if (!subs.ok()) {
    std::fprintf(stderr, "ferry: push: cannot list subscriptions: %s\n", subs.status().message().c_str());
    return;
  }
  std::map<std::string, Subscription> wanted;
  for (auto& s : *subs) wanted.emplace(s.name, std::move(s));
  for (auto it = workers_.begin(); it != workers_.end();) {
    auto w = wanted.find(it->first);
    auto const& have = it->second->sub;
    bool same = w != wanted.end() && SubscriptionToJson(w->second) == SubscriptionToJson(have);
    if (same) {
      ++it;
      continue;
    }
    it->second->stop = true;
    it->second->thread.join();
    it = workers_.erase(it);
  }
  for (auto& [name, sub] : wanted) {
    if (workers_.count(name) > 0) continue;
    auto worker = std::make_unique<Worker>();
    worker->sub = sub;
    Worker* w = worker.get();
    worker->thread = std::thread([this, w] { WorkLoop(*w); });
    workers_.emplace(name, std::move(worker));
  }
}

void PushDelivery::WorkLoop(Worker& worker) {
  auto const& sub = worker.sub;
  auto endpoint = ParseEndpoint(sub.push_config.push_endpoint);
  std::chrono::milliseconds backoff{0};
  auto pause = [&](std::chrono::milliseconds d) {
    for (auto until = Steady::now() + d; !worker.stop && Steady::now() < until;) {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(d, std::chrono::milliseconds(50)));
    }
  };
  while (!worker.stop) {
    // While the endpoint fails, one message at a time: a leased message counts a delivery attempt.
    int const batch = backoff.count() > 0 ? 1 : options_.batch;
    auto pulled = broker_.Pull(sub.name, {.max_messages = batch,
                                          .wait_until = Steady::now() + std::chrono::milliseconds(500)});
    if (!pulled.ok()) {
      pause(std::chrono::milliseconds(500));  // deleted or changed: the manager stops or replaces this worker
      continue;
    }
    std::vector<std::string> acks, unsent;
    bool failed = false;
    for (auto const& received : *pulled) {
      if (worker.stop || failed) {
        unsent.push_back(received.ack_id);  // stopping, or the endpoint just failed: they go again later
        continue;
      }
      StatusOr<int> status = endpoint.status();
      if (endpoint.ok()) {
        status = Post(*endpoint, MakeRequest(sub, received),
                      Steady::now() + std::chrono::seconds(sub.ack_deadline_seconds));
      }
      if (status.ok() && *status >= 200 && *status < 300) {
        acks.push_back(received.ack_id);
        backoff = std::chrono::milliseconds(0);
        continue;
      }
      std::string error = status.ok() ? "push endpoint " + sub.push_config.push_endpoint + " answered HTTP " +
                                            std::to_string(*status)
                                      : status.status().message();
      (void)broker_.Nack(sub.name, received.ack_id, error);
      backoff = std::clamp(backoff * 2, options_.min_backoff, options_.max_backoff);
      failed = true;
    }
    if (!acks.empty()) (void)broker_.Acknowledge(sub.name, acks);
    if (!unsent.empty()) (void)broker_.ModifyAckDeadline(sub.name, unsent, 0);
    if (failed) pause(backoff);
  }
}

}  // namespace ferry
