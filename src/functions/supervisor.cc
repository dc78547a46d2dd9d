#include "functions/supervisor.h"

#include "common/check.h"
#include "common/deadline_stream.h"
#include "common/latency_stages.h"
#include "common/random_hex.h"

#include "functions/instance_cgroup.h"

#include <utility>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace ferry {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Steady = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kWatchInterval{100};
// How long an answered call waits for the instance's output written before the answer (ChildProcess::
// WaitOutputDrained); usually no time at all.
constexpr std::chrono::milliseconds kOutputDrainWait{100};
constexpr std::chrono::milliseconds kMaxRestartBackoff{30'000};
constexpr std::size_t kStderrLinesKept = 5;
constexpr std::size_t kMaxErrorBytes = 2048;

// A free loopback port. Another process could take it before the instance binds; the start then fails and
// the next invocation tries another.
StatusOr<int> PickPort() {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (ec) return UnavailableError("no free port: " + ec.message());
  return static_cast<int>(acceptor.local_endpoint().port());
}

// Whether some process holds the port now (binding it fails).
bool PortTaken(int port) {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.bind(ep, ec);
  return ec == asio::error::address_in_use;
}

// An instance's address: its Unix socket when it has one (the runtimes Ferry controls), else its loopback port.
// A Unix socket saves the TCP stack on both sides of every call, and only this user can reach it.
using Socket = asio::generic::stream_protocol::socket;
asio::generic::stream_protocol::endpoint InstanceEndpoint(int port, std::string const& unix_socket) {
  if (!unix_socket.empty()) return asio::local::stream_protocol::endpoint(unix_socket);
  return tcp::endpoint(asio::ip::address_v4::loopback(), static_cast<unsigned short>(port));
}

bool Accepts(int port, std::string const& unix_socket) {
  asio::io_context io;
  Socket socket(io);
  beast::error_code ec;
  socket.connect(InstanceEndpoint(port, unix_socket), ec);
  return !ec;
}

// Connections to an instance are reused while idle for less than this: Google's Functions Frameworks keep idle
// connections for 5 s (Node's default keepAliveTimeout), so a reused one is almost never closed under us.
constexpr auto kMaxConnectionIdle = std::chrono::seconds(2);

constexpr std::size_t kMaxAnswerBytes = 32 * 1024 * 1024;

std::string Truncate(std::string s) {
  if (s.size() > kMaxErrorBytes) s.resize(kMaxErrorBytes);
  return s;
}

// A blocking connect to an instance (TCP with Nagle off); -1 and `ec` on failure.
int ConnectInstance(int port, std::string const& unix_socket, beast::error_code& ec) {
  auto endpoint = InstanceEndpoint(port, unix_socket);
  int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0) {
    ec.assign(errno, beast::system_category());
    if (fd >= 0) ::close(fd);
    return -1;
  }
  int one = 1;
  if (unix_socket.empty()) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}


http::request<http::string_body> MakeRequest(Invocation const& invocation, std::string const& instance_secret) {
  http::request<http::string_body> req{http::string_to_verb(invocation.method), invocation.path, 11};
  // A method Beast has no verb for (FOO) goes as it came; the parser only passed a valid token.
  if (req.method() == http::verb::unknown) req.method_string(invocation.method);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.set("Function-Execution-Id", invocation.execution_id);
  for (auto const& [k, v] : invocation.headers) req.set(k, v);
  // Set after the caller's headers, so no caller can send its own: the instance serves only Ferry (kInstanceSecret).
  req.set(kInstanceSecretHeader, instance_secret);
  req.body() = invocation.body;
  req.keep_alive(true);
  req.prepare_payload();
  return req;
}

// The result of an answered invocation: a 2xx is a success, anything else the function's error.
InvocationResult Answered(http::response<http::string_body> res) {
  InvocationResult result;
  result.http_status = static_cast<int>(res.result_int());
  for (auto const& f : res) result.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  result.body = std::move(res.body());
  if (result.http_status >= 200 && result.http_status < 300) {
    result.status = ExecutionStatus::kOk;
  } else {
    result.status = ExecutionStatus::kError;
    result.error = Truncate("HTTP " + std::to_string(result.http_status) + ": " + result.body);
  }
  return result;
}

}  // namespace

char const* ExecutionStatusName(ExecutionStatus status) {
  switch (status) {
    case ExecutionStatus::kOk: return "ok";
    case ExecutionStatus::kError: return "error";
    case ExecutionStatus::kTimeout: return "timeout";
    case ExecutionStatus::kCrash: return "crash";
    case ExecutionStatus::kOom: return "oom";
  }
  return "error";
}

// One keep-alive HTTP connection to an instance for Invoke, as its descriptor. Invoke uses it with blocking I/O
// on the invoking thread: one send and one or two receives per invocation, where an event loop of its own would
// cost epoll registrations and wake-ups on top (measured with bench/functions_bench.sh).
struct Connection {
  int fd = -1;
  beast::flat_buffer buffer;
  Steady::time_point idle_since;

  Connection() = default;
  Connection(Connection const&) = delete;
  Connection& operator=(Connection const&) = delete;
  ~Connection() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

// Keep-alive connections to instances for TryInvokeAsync, registered with one event loop and used only on its
// thread. An Asio service of that loop, so they close when the loop is destroyed, never after it. A connection
// is keyed by its instance's id, and one idle for kMaxConnectionIdle is dropped, so those of instances that
// are gone go too.
class AsyncConnections : public asio::execution_context::service {
 public:
  using key_type = AsyncConnections;
  static inline asio::execution_context::id id;

  struct Idle {
    std::shared_ptr<Socket> socket;
    beast::flat_buffer buffer;
    Steady::time_point since;
  };

  explicit AsyncConnections(asio::execution_context& context) : service(context) {}

  std::optional<Idle> Take(uint64_t instance) {
    auto it = idle_.find(instance);
    if (it == idle_.end()) return std::nullopt;
    auto& list = it->second;
    std::optional<Idle> out;
    while (!list.empty() && !out) {
      if (Steady::now() - list.back().since < kMaxConnectionIdle) out = std::move(list.back());
      list.pop_back();
    }
    if (list.empty()) idle_.erase(it);
    return out;
  }

  void Return(uint64_t instance, Idle idle) {
    idle.since = Steady::now();
    idle_[instance].push_back(std::move(idle));
    if (++returns_ % 4096 != 0) return;
    for (auto it = idle_.begin(); it != idle_.end();) {
      std::erase_if(it->second, [&](Idle const& c) { return idle.since - c.since >= kMaxConnectionIdle; });
      it = it->second.empty() ? idle_.erase(it) : std::next(it);
    }
  }

 private:
  void shutdown() override { idle_.clear(); }

  std::map<uint64_t, std::vector<Idle>> idle_;
  uint64_t returns_ = 0;
};

// The calls' deadlines on one event loop, on one timer. A timer per call re-arms the loop's timerfd whenever it is
// the earliest, a system call each call when calls come one at a time. Here the timer is armed again only when a new
// deadline comes before the one it waits for; a call that ends in time leaves it armed, and it wakes, finds nothing
// due and sleeps till the earliest left (or is cancelled when no call is left). One function's calls share a
// timeout, so while calls overlap a new deadline seldom comes first. Used on the loop's thread only.
class CallDeadlines : public asio::execution_context::service {
 public:
  using key_type = CallDeadlines;
  static inline asio::execution_context::id id;
  using Token = std::multimap<Steady::time_point, std::function<void()>>::iterator;

  explicit CallDeadlines(asio::io_context& io) : service(io), timer_(io) {}

  // `on_due` runs on the loop when `at` has passed, unless the token is removed first. After it ran, the token
  // must not be removed.
  Token Add(Steady::time_point at, std::function<void()> on_due) {
    auto token = due_.emplace(at, std::move(on_due));
    if (!armed_ || at < armed_at_) Arm(at);
    return token;
  }
  void Remove(Token token) {
    due_.erase(token);
    if (due_.empty() && armed_) {  // no call left: no wake-up, and a loop without calls runs out of work
      armed_ = false;
      timer_.cancel();
    }
  }

 private:
  void Arm(Steady::time_point at) {
    armed_ = true;
    armed_at_ = at;
    timer_.expires_at(at);  // a wait pending for a later time ends with operation_aborted
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      armed_ = false;
      while (!due_.empty() && due_.begin()->first <= Steady::now()) {
        auto on_due = std::move(due_.begin()->second);
        due_.erase(due_.begin());
        on_due();
      }
      if (!due_.empty() && !armed_) Arm(due_.begin()->first);
    });
  }
  void shutdown() override {
    due_.clear();
    boost::system::error_code ignored;
    timer_.cancel(ignored);
  }

  asio::steady_timer timer_;
  std::multimap<Steady::time_point, std::function<void()>> due_;
  bool armed_ = false;
  Steady::time_point armed_at_;
};

std::atomic<uint64_t> next_instance_id{1};

}  // namespace

struct Supervisor::Instance {
  uint64_t id = next_instance_id++;
  int port = 0;
  std::string unix_socket;  // its path, when it listens on one instead of `port`
  std::string secret = RandomHex(16);  // its requests carry it; the runtimes Ferry controls check it
  std::mutex conns_mu;
  std::vector<std::unique_ptr<Connection>> idle_conns;  // GUARDED_BY(conns_mu)

  std::unique_ptr<Connection> TakeConnection() {
    std::lock_guard lock(conns_mu);
    while (!idle_conns.empty()) {
      auto conn = std::move(idle_conns.back());
      idle_conns.pop_back();
      if (Steady::now() - conn->idle_since < kMaxConnectionIdle) return conn;
    }
    return nullptr;
  }
  void ReturnConnection(std::unique_ptr<Connection> conn) {
    conn->idle_since = Steady::now();
    std::lock_guard lock(conns_mu);
    idle_conns.push_back(std::move(conn));
  }

  // Every process of the instance dies first, those that left its process group too, so none holds its output
  // pipes open while `process` is destroyed. The process (and so its output readers, which write into
  // last_stderr) goes before the other members: declared after it, they would be destroyed first.
  ~Instance() {
    if (cgroup) cgroup->KillAll();
    process.reset();
    if (!unix_socket.empty()) ::unlink(unix_socket.c_str());
  }

  std::unique_ptr<InstanceCgroup> cgroup;  // before `process`: removed after the process is gone
  std::unique_ptr<ChildProcess> process;
  std::atomic<bool> oom_killed{false};
  int in_flight = 0;              // GUARDED_BY(Supervisor::mu_)
  Steady::time_point idle_since;  // GUARDED_BY(Supervisor::mu_)

  std::mutex lines_mu;
  std::string current_execution;         // GUARDED_BY(lines_mu): tags plain lines when concurrency is 1
  std::deque<std::string> last_stderr;   // GUARDED_BY(lines_mu): for start failures and crashes

  std::string LastStderr() {
    std::lock_guard lock(lines_mu);
    std::string out;
    for (auto const& l : last_stderr) out += (out.empty() ? "" : " | ") + l;
    return out;
  }

  void SetCurrentExecution(std::string const& execution_id) {
    std::lock_guard lock(lines_mu);
    current_execution = execution_id;
  }

  // What an exchange that got no answer means: a timeout, or the instance died, of its memory limit or
  // otherwise. Kills the instance either way; the caller releases it as unhealthy.
  InvocationResult Failed(InstanceSpec const& spec, beast::error_code outcome) {
    InvocationResult result;
    if (outcome == beast::error::timeout) {
      result.status = ExecutionStatus::kTimeout;
      result.error = "function " + spec.function + " did not answer within " + std::to_string(spec.timeout.count()) +
                     " ms; its instance was replaced";
    } else if (oom_killed || (cgroup && cgroup->OomKilled())) {
      result.status = ExecutionStatus::kOom;
      result.error = "instance of " + spec.function + " exceeded its memory limit of " +
                     std::to_string(spec.memory_mb) + " MB and was killed";
    } else {
      result.status = ExecutionStatus::kCrash;
      bool const exited = process->Exited();
      std::string how = exited ? process->ExitDescription() : outcome.message();
      // What it printed as it died, read to the end (its reader may be a moment behind the exit).
      if (exited) (void)process->WaitOutputRead(std::chrono::milliseconds(200));
      result.error = "instance of " + spec.function + " crashed (" + how + "): " + LastStderr();
    }
    process->Kill();
    return result;
  }
};

struct Supervisor::Pool {
  InstanceSpec spec;
  std::vector<std::shared_ptr<Instance>> instances;  // GUARDED_BY(Supervisor::mu_)
  int starting = 0;                                  // GUARDED_BY(Supervisor::mu_)
  int64_t started_total = 0;                         // GUARDED_BY(Supervisor::mu_)
  int consecutive_crashes = 0;                       // GUARDED_BY(Supervisor::mu_)
  Steady::time_point next_start;                     // GUARDED_BY(Supervisor::mu_): crash backoff
  bool removed = false;                              // GUARDED_BY(Supervisor::mu_)
  // Calls waiting for a slot, first come first served. Invariant (under mu_): while one waits, no instance has a
  // free slot, because a slot that frees goes straight to the first waiter.
  std::deque<std::shared_ptr<Waiter>> queue;  // GUARDED_BY(Supervisor::mu_)
};

// One call waiting for a slot on an instance. A slot that frees is handed to it directly, so nobody races for
// it and no other waiter wakes. A blocking waiter (Acquire) sleeps on its own condition variable; a waiter
// without a thread (TryInvokeAsync) is resumed on its event loop.
struct Supervisor::Request {
  http::request<http::string_body> http;
};

struct Supervisor::Waiter {
  std::shared_ptr<Instance> granted;  // GUARDED_BY(Supervisor::mu_): the slot handed to a blocking waiter
  std::condition_variable cv;
  asio::io_context* io = nullptr;  // set for a waiter without a thread
  std::function<void(StatusOr<std::shared_ptr<Instance>>)> resume;  // called on `io`, once
  std::shared_ptr<std::atomic<bool>> client_gone;  // set when the caller left: it gets no slot

  bool Gone() const { return client_gone && client_gone->load(); }
};

namespace {

// What a call that got no slot is answered: as Cloud Functions, 429 when no instance was free in time.
InvocationResult NotAcquired(Status const& status) {
  InvocationResult result;
  result.status = ExecutionStatus::kCrash;
  result.error = status.message();
  if (status.code() == StatusCode::kResourceExhausted) {
    result.status = ExecutionStatus::kError;
    result.http_status = 429;
    result.body = status.message();
  } else if (status.code() == StatusCode::kCancelled) {  // nobody to answer: nginx's 499
    result.status = ExecutionStatus::kError;
    result.http_status = 499;
    result.body = status.message();
  }
  return result;
}

Status QueueFull(std::string const& function) {
  return Status(StatusCode::kResourceExhausted,
                "too many calls are waiting for an instance of function " + function + "; retry later");
}

Status WaitedTooLong(std::string const& function) {
  return Status(StatusCode::kResourceExhausted,
                "no instance of function " + function + " became free within its timeout; retry later");
}

}  // namespace

Supervisor::SocketDir::SocketDir() {
  std::string dir = "/tmp/ferry-sockets-XXXXXX";
  if (::mkdtemp(dir.data()) != nullptr) path = dir;  // mkdtemp makes it 0700
}

Supervisor::SocketDir::~SocketDir() {
  std::error_code ignored;
  if (!path.empty()) std::filesystem::remove_all(path, ignored);
}

Supervisor::Supervisor(InstanceLogSink sink, OutputLoop output_loop)
    : sink_(std::move(sink)), output_loop_(std::move(output_loop)), watchdog_([this] { Watch(); }), warmer_([this] { KeepWarm(); }) {}

Supervisor::~Supervisor() {
  std::map<std::string, std::shared_ptr<Pool>> pools;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    pools.swap(pools_);
    for (auto& [name, pool] : pools) {
      pool->removed = true;
      FailWaiters(*pool);
    }
  }
  cv_.notify_all();
  watch_cv_.notify_all();
  watchdog_.join();
  warmer_.join();
  // Instances die with their pools (ChildProcess kills on destruction), outside the lock.
}

void Supervisor::Deploy(InstanceSpec spec) {
  auto pool = std::make_shared<Pool>();
  pool->spec = std::move(spec);
  std::shared_ptr<Pool> old;
  {
    std::lock_guard lock(mu_);
    auto& slot = pools_[pool->spec.function];
    old = std::exchange(slot, pool);
    if (old) {
      old->removed = true;
      FailWaiters(*old);
    }
  }
  cv_.notify_all();
  if (old) {
    std::lock_guard lock(mu_);
    for (auto& inst : old->instances) inst->process->Kill();
  }
}

void Supervisor::Remove(std::string const& function) {
  std::shared_ptr<Pool> old;
  {
    std::lock_guard lock(mu_);
    auto it = pools_.find(function);
    if (it == pools_.end()) return;
    old = it->second;
    old->removed = true;
    FailWaiters(*old);
    pools_.erase(it);
    for (auto& inst : old->instances) inst->process->Kill();
  }
  cv_.notify_all();
}

std::shared_ptr<Supervisor::Pool> Supervisor::FindPool(std::string const& function) {
  std::lock_guard lock(mu_);
  auto it = pools_.find(function);
  return it == pools_.end() ? nullptr : it->second;
}

Supervisor::Usage Supervisor::UsageOf(std::string const& function) {
  std::lock_guard lock(mu_);
  Usage usage;
  auto it = pools_.find(function);
  if (it == pools_.end()) return usage;
  usage.running = static_cast<int>(it->second->instances.size());
  for (auto const& inst : it->second->instances) usage.busy += inst->in_flight > 0 ? 1 : 0;
  usage.started_total = it->second->started_total;
  usage.queued = static_cast<int>(it->second->queue.size());
  return usage;
}

StatusOr<std::shared_ptr<Supervisor::Instance>> Supervisor::Acquire(Pool& pool, bool bounded,
                                                                   std::atomic<bool> const* client_gone) {
  std::unique_lock lock(mu_);
  auto const wait_until = Steady::now() + pool.spec.timeout;
  std::shared_ptr<Waiter> me;  // in pool.queue while it waits; Grant takes it out
  auto leave = [&] {
    if (me) std::erase(pool.queue, me);
  };
  while (true) {
    if (me && me->granted) return std::move(me->granted);
    if (stopping_ || pool.removed) {
      leave();
      return UnavailableError("function " + pool.spec.function + " was removed");
    }
    if (pool.queue.empty()) {
      for (auto& inst : pool.instances) {
        if (inst->in_flight < pool.spec.concurrency) {
          ++inst->in_flight;
          return inst;
        }
      }
    }
    if (static_cast<int>(pool.instances.size()) + pool.starting < pool.spec.max_instances) {
      ++pool.starting;
      auto wait_until = pool.next_start;
      lock.unlock();
      std::this_thread::sleep_until(wait_until);  // crash backoff; the past returns at once
      auto started = StartInstance(pool);
      lock.lock();
      --pool.starting;
      if (!started.ok()) {
        ++pool.consecutive_crashes;
        auto backoff = std::min<std::chrono::milliseconds>(
            kMaxRestartBackoff, std::chrono::milliseconds(250 << std::min(pool.consecutive_crashes, 8)));
        pool.next_start = Steady::now() + backoff;
        leave();
        WakeForRoom(pool);
        return started.status();
      }
      if (pool.removed) {
        (*started)->process->Kill();
        continue;
      }
      (*started)->idle_since = Steady::now();
      pool.instances.push_back(*started);
      watch_cv_.notify_one();
      if (me && me->granted) {  // handed a slot while it started one: the new one serves others
        GrantFree(pool);
        return std::move(me->granted);
      }
      leave();
      (*started)->in_flight = 1;
      GrantFree(pool);  // its other slots, when it takes more than one call
      return *started;
    }
    if (!me) {
      if (bounded && static_cast<int>(pool.queue.size()) >= kMaxQueuedCalls) DropGone(pool);
      if (bounded && static_cast<int>(pool.queue.size()) >= kMaxQueuedCalls) return QueueFull(pool.spec.function);
      me = std::make_shared<Waiter>();
      pool.queue.push_back(me);
    }
    // In slices, to notice a caller that left (the server's I/O thread sets the flag; nothing notifies).
    constexpr auto kSlice = std::chrono::milliseconds(100);
    me->cv.wait_until(lock, bounded ? std::min(wait_until, Steady::now() + kSlice) : Steady::now() + kSlice);
    if (me->granted) continue;
    if (client_gone != nullptr && client_gone->load()) {
      leave();
      return Status(StatusCode::kCancelled, "the caller went away while waiting for an instance");
    }
    if (bounded && Steady::now() >= wait_until) {
      leave();
      return WaitedTooLong(pool.spec.function);
    }
  }
}

void Supervisor::Release(Pool& pool, std::shared_ptr<Instance> const& instance, bool healthy) {
  std::lock_guard lock(mu_);
  if (!healthy) {
    --instance->in_flight;
    std::erase(pool.instances, instance);
    WakeForRoom(pool);
    return;
  }
  pool.consecutive_crashes = 0;
  if (pool.removed || !Grant(pool, instance)) {
    --instance->in_flight;
    instance->idle_since = Steady::now();
  }
}

bool Supervisor::Grant(Pool& pool, std::shared_ptr<Instance> const& instance) {
  DropGone(pool);
  if (pool.queue.empty()) return false;
  auto waiter = std::move(pool.queue.front());
  pool.queue.pop_front();
  if (waiter->io == nullptr) {
    waiter->granted = instance;
    waiter->cv.notify_one();
  } else {
    asio::post(*waiter->io, [resume = std::move(waiter->resume), instance] { resume(instance); });
  }
  return true;
}

void Supervisor::DropGone(Pool& pool) {
  std::erase_if(pool.queue, [](std::shared_ptr<Waiter> const& waiter) {
    if (!waiter->Gone()) return false;
    if (waiter->io == nullptr) {
      waiter->cv.notify_one();  // it sees its caller gone and leaves
    } else {
      Status gone(StatusCode::kCancelled, "the caller went away while waiting for an instance");
      asio::post(*waiter->io, [resume = std::move(waiter->resume), gone] { resume(gone); });
    }
    return true;
  });
}

void Supervisor::GrantFree(Pool& pool) {
  for (auto& inst : pool.instances) {
    while (inst->in_flight < pool.spec.concurrency && !pool.queue.empty()) {
      ++inst->in_flight;
      if (!Grant(pool, inst)) --inst->in_flight;  // the waiters left
    }
  }
}

void Supervisor::WakeForRoom(Pool& pool) {
  for (auto& waiter : pool.queue) {
    if (waiter->io == nullptr) {
      waiter->cv.notify_one();
    } else {
      start_wanted_ = true;
    }
  }
  if (start_wanted_) cv_.notify_all();
}

void Supervisor::FailWaiters(Pool& pool) {
  Status removed = UnavailableError("function " + pool.spec.function + " was removed");
  std::erase_if(pool.queue, [&](std::shared_ptr<Waiter> const& waiter) {
    if (waiter->io == nullptr) {
      waiter->cv.notify_one();  // it sees the pool removed and leaves
      return false;
    }
    asio::post(*waiter->io, [resume = std::move(waiter->resume), removed] { resume(removed); });
    return true;
  });
}

StatusOr<std::shared_ptr<Supervisor::Instance>> Supervisor::StartInstance(Pool& pool) {
  // The port is picked free and released before the instance binds it; another process may take it meanwhile
  // (outgoing connections draw from the same range). An instance that died while its port is taken by someone
  // else lost that race, not its own: it starts again on another port.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    int port = 0;
    auto started = StartInstanceOnce(pool, port);
    if (started.ok() || attempt == kAttempts || port == 0 || !PortTaken(port)) return started;
  }
}

StatusOr<std::shared_ptr<Supervisor::Instance>> Supervisor::StartInstanceOnce(Pool& pool, int& picked_port) {
  InstanceSpec const& spec = pool.spec;
  auto inst = std::make_shared<Instance>();
  ProcessOptions options = spec.process;
  if (spec.unix_socket && !socket_dir_.empty()) {
    inst->unix_socket = socket_dir_ + "/i" + std::to_string(inst->id) + ".sock";
    options.env["FERRY_UNIX_SOCKET"] = inst->unix_socket;
  } else {
    auto port = PickPort();
    if (!port.ok()) return port.status();
    picked_port = inst->port = *port;
    options.env["PORT"] = std::to_string(*port);
  }
  options.env["FUNCTION_TARGET"] = spec.entry_point;
  options.env["FUNCTION_SIGNATURE_TYPE"] = spec.signature;
  options.env["K_SERVICE"] = spec.service.empty() ? spec.function : spec.service;
  options.env["FERRY_INSTANCE_SECRET"] = inst->secret;
  inst->cgroup = InstanceCgroup::Create({.memory_bytes = spec.memory_mb * 1024 * 1024, .max_tasks = kMaxInstanceTasks});
  if (inst->cgroup) options.cgroup_procs_fds = inst->cgroup->procs_fds();
  Instance* raw = inst.get();  // the process, and so its reader threads, die before the Instance
  bool tag_plain_lines = spec.concurrency == 1;
  auto process = ChildProcess::Spawn(options, [this, raw, function = spec.function, tag_plain_lines](
                                                  bool is_stderr, std::string line) {
    InstanceLine out = ParseInstanceLine(is_stderr, line);
    {
      std::lock_guard lock(raw->lines_mu);
      if (out.execution_id.empty() && tag_plain_lines) out.execution_id = raw->current_execution;
      if (is_stderr) {
        raw->last_stderr.push_back(std::move(line));
        if (raw->last_stderr.size() > kStderrLinesKept) raw->last_stderr.pop_front();
      }
    }
    if (sink_) sink_(function, std::move(out));
  }, output_loop_);
  if (!process.ok()) return process.status();
  inst->process = *std::move(process);
  auto deadline = Steady::now() + spec.start_timeout;
  while (!Accepts(inst->port, inst->unix_socket)) {
    if (inst->process->Exited()) {
      (void)inst->process->WaitOutputRead(std::chrono::milliseconds(200));  // its last lines say why
      return UnavailableError("instance of " + spec.function + " exited while starting (" +
                              inst->process->ExitDescription() + "): " + inst->LastStderr());
    }
    if (Steady::now() > deadline) {
      return UnavailableError("instance of " + spec.function + " did not listen within " +
                              std::to_string(spec.start_timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mu_);
  ++pool.started_total;  // counted once it listens: a try that lost its port to another process is not a start
  return inst;
}

InvocationResult Supervisor::Invoke(std::string const& function, Invocation const& invocation) {
  InvocationResult result;
  auto pool = FindPool(function);
  if (!pool) {
    result.status = ExecutionStatus::kError;
    result.error = "function " + function + " is not deployed";
    return result;
  }
  auto acquired = Acquire(*pool, invocation.bounded_wait, invocation.client_gone.get());
  if (!acquired.ok()) return NotAcquired(acquired.status());
  if (invocation.on_start) invocation.on_start();
  auto inst = *acquired;
  inst->SetCurrentExecution(invocation.execution_id);
  auto req = MakeRequest(invocation, inst->secret);

  // On a reused connection the instance may have closed it just as we wrote; with no byte of an answer yet, the
  // request was not taken, and it goes once more on a new connection.
  auto deadline = Steady::now() + pool->spec.timeout;
  std::unique_ptr<Connection> conn;
  std::optional<http::response_parser<http::string_body>> parser;
  beast::error_code outcome;
  for (int round = 0; round < 2; ++round) {
    conn = inst->TakeConnection();
    bool reused = conn != nullptr;
    outcome = {};
    if (!reused) {
      conn = std::make_unique<Connection>();
      conn->fd = ConnectInstance(inst->port, inst->unix_socket, outcome);
    }
    parser.emplace();
    parser->body_limit(kMaxAnswerBytes);
    DeadlineStream stream(conn->fd, deadline);
    if (!outcome) http::write(stream, req, outcome);
    if (!outcome) http::read(stream, conn->buffer, *parser, outcome);
    bool retry = reused && outcome && outcome != beast::error::timeout && !parser->got_some();
    if (!retry) break;
  }

  bool healthy = !outcome;
  if (outcome) {
    // No answer. If the instance died under the invocation, give the watchdog's kill a moment to be seen.
    for (int i = 0; outcome != beast::error::timeout && i < 50 && !inst->process->Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    result = inst->Failed(pool->spec, outcome);
  } else {
    if (parser->keep_alive()) inst->ReturnConnection(std::move(conn));
    result = Answered(parser->release());
  }
  // Its output comes by pipe, its answer by socket, and the answer can overtake the lines written before it: wait
  // (briefly) for them, so they are logged under this execution, before it is recorded and the instance moves on.
  if (inst->process) inst->process->WaitOutputDrained(kOutputDrainWait);
  inst->SetCurrentExecution("");
  Release(*pool, inst, healthy);
  return result;
}

bool Supervisor::TryInvokeAsync(std::string const& function, Invocation const& invocation, asio::io_context& io,
                                std::function<void(InvocationResult)> done) {
  auto pool = FindPool(function);
  if (!pool) return false;
  std::shared_ptr<Instance> inst;
  // The request, with the instance's secret set once there is an instance.
  auto req = std::make_shared<Request>(Request{MakeRequest(invocation, "")});
  {
    std::lock_guard lock(mu_);
    if (stopping_ || pool->removed) return false;
    if (pool->queue.empty()) {
      for (auto& candidate : pool->instances) {
        if (candidate->in_flight < pool->spec.concurrency) {
          ++candidate->in_flight;
          inst = candidate;
          break;
        }
      }
    }
    if (!inst) {
      if (static_cast<int>(pool->instances.size()) + pool->starting < pool->spec.max_instances) return false;
      if (static_cast<int>(pool->queue.size()) >= kMaxQueuedCalls) DropGone(*pool);
      if (static_cast<int>(pool->queue.size()) >= kMaxQueuedCalls) {
        asio::post(io, [done = std::move(done), full = QueueFull(function)] { done(NotAcquired(full)); });
        return true;
      }
      // Waits its turn: resumed on `io` with a slot, or answered 429 when the function's timeout passes first.
      auto waiter = std::make_shared<Waiter>();
      auto timer = std::make_shared<asio::steady_timer>(io, pool->spec.timeout);
      waiter->io = &io;
      waiter->client_gone = invocation.client_gone;
      waiter->resume = [this, &io, pool, timer, execution_id = invocation.execution_id, req,
                        on_start = invocation.on_start,
                        done = std::move(done)](StatusOr<std::shared_ptr<Instance>> slot) {
        timer->cancel();
        if (!slot.ok()) return done(NotAcquired(slot.status()));
        if (on_start) on_start();
        (*slot)->SetCurrentExecution(execution_id);
        req->http.set(kInstanceSecretHeader, (*slot)->secret);
        SendAsync(io, pool, *slot, req, done);
      };
      timer->async_wait([this, pool, weak = std::weak_ptr<Waiter>(waiter)](beast::error_code ec) {
        auto waiter = weak.lock();
        if (ec || !waiter) return;
        std::function<void(StatusOr<std::shared_ptr<Instance>>)> resume;
        {
          std::lock_guard lock(mu_);
          if (std::erase(pool->queue, waiter) == 0) return;  // granted or answered meanwhile
          resume = std::move(waiter->resume);
        }
        resume(WaitedTooLong(pool->spec.function));
      });
      pool->queue.push_back(std::move(waiter));
      if (invocation.queued) *invocation.queued = true;
      return true;
    }
  }
  if (invocation.on_start) invocation.on_start();
  inst->SetCurrentExecution(invocation.execution_id);
  req->http.set(kInstanceSecretHeader, inst->secret);
  SendAsync(io, pool, inst, std::move(req), std::move(done));
  return true;
}

void Supervisor::SendAsync(asio::io_context& io, std::shared_ptr<Pool> pool, std::shared_ptr<Instance> inst,
                           std::shared_ptr<Request> request, std::function<void(InvocationResult)> done) {
  // Invoke's exchange, as a coroutine on `io`. The timer may fire after the coroutine's frame is gone, so what it
  // touches is shared.
  auto exchange = [this, &io, pool, inst, request, done = std::move(done)]() -> asio::awaitable<void> {
    auto const& req = request->http;
    struct Deadline {
      std::shared_ptr<Socket> socket;  // the one in use
      bool passed = false;
    };
    auto deadline = std::make_shared<Deadline>();
    auto& deadlines = asio::use_service<CallDeadlines>(io);
    auto const due = deadlines.Add(Steady::now() + pool->spec.timeout, [deadline] {
      deadline->passed = true;
      beast::error_code ignored;
      if (deadline->socket) deadline->socket->cancel(ignored);
    });
    auto& connections = asio::use_service<AsyncConnections>(io);
    AsyncConnections::Idle conn;
    std::optional<http::response_parser<http::string_body>> parser;
    beast::error_code outcome;
    for (int round = 0; round < 2; ++round) {
      auto idle = connections.Take(inst->id);
      bool reused = idle.has_value();
      outcome = {};
      if (reused) {
        conn = *std::move(idle);
      } else {
        conn = {std::make_shared<Socket>(io), {}, {}};
      }
      deadline->socket = conn.socket;
      if (!reused) {
        co_await conn.socket->async_connect(InstanceEndpoint(inst->port, inst->unix_socket),
                                            asio::redirect_error(asio::use_awaitable, outcome));
        if (!outcome && inst->unix_socket.empty()) conn.socket->set_option(tcp::no_delay(true), outcome);
      }
      parser.emplace();
      parser->body_limit(kMaxAnswerBytes);
      auto const call_start = latency::Now();
      if (!outcome && !deadline->passed) {
        co_await http::async_write(*conn.socket, req, asio::redirect_error(asio::use_awaitable, outcome));
      }
      if (!outcome && !deadline->passed) {
        co_await http::async_read(*conn.socket, conn.buffer, *parser,
                                  asio::redirect_error(asio::use_awaitable, outcome));
      }
      if (!outcome) latency::RecordSince(Stage::kFunctionCall, call_start);
      if (deadline->passed) outcome = beast::error::timeout;
      bool retry = reused && outcome && outcome != beast::error::timeout && !parser->got_some();
      if (!retry) break;
    }
    if (!deadline->passed) deadlines.Remove(due);
    deadline->socket.reset();

    InvocationResult result;
    bool healthy = !outcome;
    if (outcome) {
      asio::steady_timer pause(io);
      for (int i = 0; outcome != beast::error::timeout && i < 50 && !inst->process->Exited(); ++i) {
        pause.expires_after(std::chrono::milliseconds(2));
        beast::error_code ignored;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
      result = inst->Failed(pool->spec, outcome);
    } else {
      if (parser->keep_alive()) connections.Return(inst->id, std::move(conn));
      result = Answered(parser->release());
    }
    // As in Invoke: the lines written before the answer are logged under this execution, without blocking the
    // event loop. Mostly they are in the pipe already and read right here, with no thread woken; else the reader
    // that handles the last of them wakes this (a timer cancelled), at most kOutputDrainWait from now. (Polling
    // every 2 ms here was the 2 ms tail of HTTP calls.)
    auto const drain_start = latency::Now();
    if (inst->process && !inst->process->TryDrainOutput()) {
      auto drained = std::make_shared<asio::steady_timer>(io, kOutputDrainWait);
      uint64_t token = inst->process->WhenOutputDrained([drained] {
        asio::post(drained->get_executor(), [drained] { drained->cancel(); });
      });
      if (token != 0) {
        beast::error_code ignored;
        co_await drained->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        inst->process->CancelWhenDrained(token);
      }
    }
    latency::RecordSince(Stage::kFunctionDrain, drain_start);
    inst->SetCurrentExecution("");
    Release(*pool, inst, healthy);
    done(std::move(result));
  };
  asio::co_spawn(io, std::move(exchange), asio::detached);
}

void Supervisor::KeepWarm() {
  pthread_setname_np(pthread_self(), "ferry-warm");
  std::unique_lock lock(mu_);
  // Whether a start may be due without a notify: a minimum to keep (an instance of it may die) or calls queued
  // without a thread (past a crash backoff). Else only a notify brings work: a deploy, or room for queued calls.
  auto may_need_start = [&] {
    return std::ranges::any_of(pools_, [](auto const& entry) {
      auto const& pool = *entry.second;
      bool const queued = std::ranges::any_of(pool.queue, [](auto const& w) { return w->io != nullptr; });
      return pool.spec.min_instances > 0 || queued;
    });
  };
  while (!stopping_) {
    auto const wanted = [&] { return stopping_ || start_wanted_; };
    if (may_need_start()) {
      cv_.wait_for(lock, std::chrono::milliseconds(200), wanted);
    } else {
      cv_.wait(lock, [&] { return wanted() || may_need_start(); });
    }
    if (stopping_) break;
    start_wanted_ = false;
    // One start at a time, for the first function below its min_instances or with calls waiting without a
    // thread while it has room (and past its crash backoff).
    std::shared_ptr<Pool> cold;
    for (auto& [name, pool] : pools_) {
      int up = static_cast<int>(pool->instances.size()) + pool->starting;
      bool waiting = std::ranges::any_of(pool->queue, [](auto const& w) { return w->io != nullptr; });
      if (!pool->removed && (up < pool->spec.min_instances || (waiting && up < pool->spec.max_instances))) {
        if (Steady::now() < pool->next_start) continue;  // seen again in the next 200 ms slice
        cold = pool;
        break;
      }
    }
    if (!cold) continue;
    ++cold->starting;
    lock.unlock();
    auto started = StartInstance(*cold);
    lock.lock();
    --cold->starting;
    if (!started.ok()) {
      ++cold->consecutive_crashes;
      cold->next_start = Steady::now() + std::min<std::chrono::milliseconds>(
                                             kMaxRestartBackoff,
                                             std::chrono::milliseconds(250 << std::min(cold->consecutive_crashes, 8)));
      WakeForRoom(*cold);
      continue;
    }
    (*started)->idle_since = Steady::now();
    if (cold->removed) {
      (*started)->process->Kill();
    } else {
      cold->instances.push_back(*started);
      watch_cv_.notify_one();
      GrantFree(*cold);
    }
  }
}

void Supervisor::Watch() {
  pthread_setname_np(pthread_self(), "ferry-watch");
  std::unique_lock lock(mu_);
  auto any_instance = [&] {
    return std::ranges::any_of(pools_, [](auto const& entry) { return !entry.second->instances.empty(); });
  };
  while (!stopping_) {
    // Nothing to watch, nothing to wake for: an idle daemon with no instance up sleeps until one starts.
    watch_cv_.wait(lock, [&] { return stopping_ || any_instance(); });
    cv_.wait_for(lock, kWatchInterval, [&] { return stopping_; });
    if (stopping_) break;
    auto now = Steady::now();
    for (auto& [name, pool] : pools_) {
      auto& instances = pool->instances;
      for (auto it = instances.begin(); it != instances.end();) {
        auto& inst = *it;
        bool busy = inst->in_flight > 0;
        if (!busy && inst->process->Exited()) {  // died while idle: forget it, a new one starts on demand
          it = instances.erase(it);
          continue;
        }
        if (inst->process->ResidentBytes() > pool->spec.memory_mb * 1024 * 1024) {
          inst->oom_killed = true;
          inst->process->Kill();
          if (!busy) {
            it = instances.erase(it);
            continue;
          }
        }
        if (!busy && static_cast<int>(instances.size()) > pool->spec.min_instances &&
            now - inst->idle_since > pool->spec.idle_timeout) {
          inst->process->Kill();
          it = instances.erase(it);
          continue;
        }
        ++it;
      }
    }
    for (auto const& [name, pool] : pools_) {
      if (!pool->queue.empty()) WakeForRoom(*pool);  // an instance it forgot leaves room to start one
    }
  }
}

}  // namespace ferry
