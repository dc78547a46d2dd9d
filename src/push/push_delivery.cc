#include "push/push_delivery.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>

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

// A TCP connection to one of `addresses` (already checked against the push policy) within the deadline; -1 with
// `error` set otherwise.
int Connect(std::vector<sockaddr_storage> const& addresses, PushEndpoint const& e, Steady::time_point deadline,
            std::string& error) {
  int fd = -1;
  error = "cannot connect to " + e.host + ":" + e.port;
  for (auto const& address : addresses) {
    if (fd >= 0) break;
    auto const* sa = reinterpret_cast<sockaddr const*>(&address);
    socklen_t sa_len = sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    fd = ::socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int err = ::connect(fd, sa, sa_len) == 0 ? 0 : errno;
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
  if (fd >= 0) {
    int one = 1;  // a request goes out whole, at once (no Nagle wait for the endpoint's delayed ACK)
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

// An HTTP header name is a token (RFC 9110 5.6.2); a value holds no CR, LF or NUL. Anything else would let a
// message's attributes write further headers, or a second request, into the push.
bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}
bool IsHeaderValue(std::string_view value) { return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

// One POST; the HTTP status, or an error when the endpoint gave no answer in time.
StatusOr<int> Post(PushPolicy const& policy, PushEndpoint const& e, PushDelivery::Request const& request,
                   Steady::time_point deadline) {
  auto addresses = policy.Resolve(e);
  if (!addresses.ok()) return addresses.status();
  std::string error;
  int fd = Connect(*addresses, e, deadline, error);
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

PushDelivery::PushDelivery(Broker& broker, PushPolicy const& policy, PushOptions options)
    : broker_(broker), policy_(policy), options_(options) {}

PushDelivery::~PushDelivery() { Stop(); }

void PushDelivery::Start() {
  broker_.SetWorkListener([this](std::string const& topic) { OnWork(topic); });
  manager_ = std::thread([this] { ManageLoop(); });
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { WorkLoop(); });
}

void PushDelivery::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  broker_.SetWorkListener(nullptr);
  cv_.notify_all();
  stop_cv_.notify_all();
  if (manager_.joinable()) manager_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void PushDelivery::OnWork(std::string const& topic) {
  int due = 0;
  {
    std::lock_guard lock(mu_);
    auto now = Steady::now();
    for (auto& [name, e] : entries_) {
      // A subscription in backoff waits it out; an idle one is due now.
      if (e.sub.topic == topic && e.backoff.count() == 0 && e.next_round > now) {
        e.next_round = now;
        e.idle = {};
        ++due;
      }
    }
  }
  // A worker per subscription made due, not all eight for one.
  if (due == 1) {
    cv_.notify_one();
  } else if (due > 1) {
    cv_.notify_all();
  }
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
      for (auto const& [k, v] : m.attributes) {
        if (IsHeaderName(k) && IsHeaderValue(v)) r.headers.emplace_back(k, v);  // else dropped: see IsHeaderName
      }
    }
    return r;
  }
  Json message = MessageToJson(m);
  // Pub/Sub's push body names these both ways.
  message["message_id"] = m.message_id;
  message["publish_time"] = FormatRfc3339(m.publish_time_ms);
  Json body = {{"message", std::move(message)}, {"subscription", sub.name}};
  if (received.delivery_attempt > 0) body["deliveryAttempt"] = received.delivery_attempt;
  r.body = SafeDump(body);
  return r;
}

void PushDelivery::ManageLoop() {
  pthread_setname_np(pthread_self(), "ferry-push-scan");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    Rescan();
    lock.lock();
    stop_cv_.wait_for(lock, options_.rescan, [&] { return stopping_; });
  }
}

void PushDelivery::Rescan() {
  auto subs = broker_.ListPushSubscriptions();
  if (!subs.ok()) {
    std::fprintf(stderr, "ferry: push: cannot list subscriptions: %s\n", subs.status().message().c_str());
    return;
  }
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    std::map<std::string, Entry> next;
    for (auto& s : *subs) {
      auto it = entries_.find(s.name);
      Entry e = it != entries_.end() ? std::move(it->second) : Entry{.sub = {}, .next_round = Steady::now()};
      // A changed subscription (a new endpoint) starts again with no backoff.
      if (it == entries_.end()) {
        changed = true;
      } else if (SubscriptionToJson(e.sub) != SubscriptionToJson(s)) {
        e.backoff = {};
        e.idle = {};
        e.next_round = Steady::now();
        changed = true;
      }
      e.sub = std::move(s);
      next.emplace(e.sub.name, std::move(e));
    }
    changed = changed || next.size() != entries_.size();
    entries_ = std::move(next);  // a busy entry that went: its worker finds it gone and drops its round's result
  }
  // Only a change wakes the workers: this runs every second, and most seconds nothing changed.
  if (changed) cv_.notify_all();
}

void PushDelivery::WorkLoop() {
  pthread_setname_np(pthread_self(), "ferry-push");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // The entry due first that no worker has, and when the next one that no worker has falls due.
    auto now = Steady::now();
    Entry* due = nullptr;
    std::optional<Steady::time_point> wake;
    for (auto& [name, e] : entries_) {
      if (e.busy) continue;
      if (e.next_round <= now && (due == nullptr || e.next_round < due->next_round)) due = &e;
      if (!wake || e.next_round < *wake) wake = e.next_round;
    }
    if (due == nullptr) {
      // With nothing to wait for, only a notify ends the wait (a publish, a changed set, a worker taking a
      // subscription while others are left, Stop).
      if (wake) {
        cv_.wait_until(lock, *wake);
      } else {
        cv_.wait(lock);
      }
      continue;
    }
    due->busy = true;
    // While this worker is busy, some other one must wait for the entries left: it may be waiting for nothing,
    // or for a later one, because it looked before this worker set their rounds.
    if (entries_.size() > 1) cv_.notify_one();
    Subscription sub = due->sub;
    auto backoff = due->backoff;
    lock.unlock();
    bool leased = false;
    try {
      leased = Round(sub, backoff);
    } catch (std::exception const& e) {  // a worker serves every subscription: nothing one does may end it
      std::fprintf(stderr, "ferry: push %s: %s\n", sub.name.c_str(), e.what());
      backoff = std::clamp(backoff * 2, options_.min_backoff, options_.max_backoff);
    }
    lock.lock();
    auto it = entries_.find(sub.name);
    if (it == entries_.end()) continue;  // deleted meanwhile
    Entry& e = it->second;
    e.busy = false;
    if (SubscriptionToJson(e.sub) != SubscriptionToJson(sub)) continue;  // changed meanwhile: Rescan set it due
    e.backoff = backoff;
    now = Steady::now();
    e.idle = leased || backoff.count() > 0 ? std::chrono::milliseconds(0)
             : e.idle.count() == 0              ? options_.idle_recheck
                                                : std::min(e.idle * 2, options_.max_idle_recheck);
    e.next_round = backoff.count() > 0 ? now + backoff : leased ? now : now + e.idle;
    // No notify: this worker looks at the schedule again itself.
  }
}

bool PushDelivery::Round(Subscription const& sub, std::chrono::milliseconds& backoff) {
  auto endpoint = ParsePushEndpoint(sub.push_config.push_endpoint);
  // While the endpoint fails, one message at a time: a leased message counts a delivery attempt.
  int const batch = backoff.count() > 0 ? 1 : options_.batch;
  auto pulled = broker_.Pull(sub.name, {.max_messages = batch});  // never waits: the schedule does
  if (!pulled.ok()) {
    backoff = std::clamp(backoff * 2, std::chrono::milliseconds(500), options_.max_backoff);  // deleted or changed
    return false;
  }
  std::vector<std::string> acks, unsent;
  bool failed = false;
  for (auto const& received : *pulled) {
    if (failed) {
      unsent.push_back(received.ack_id);  // the endpoint just failed: they go again later
      continue;
    }
    StatusOr<int> status = endpoint.status();
    if (endpoint.ok()) {
      status = Post(policy_, *endpoint, MakeRequest(sub, received),
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
  if (!unsent.empty()) (void)broker_.ReturnUnsent(sub.name, unsent);
  return !pulled->empty();
}

}  // namespace ferry
