#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ferry/status.h"
#include "functions/child_process.h"
#include "functions/instance_line.h"

namespace boost::asio {
class io_context;
}

namespace ferry {

// How one function's instances run: the program, its contract environment and its limits.
struct InstanceSpec {
  std::string function;         // the key Invoke and Remove use
  std::string service;          // K_SERVICE; the function when empty
  std::string entry_point;      // FUNCTION_TARGET
  std::string signature = "event";  // FUNCTION_SIGNATURE_TYPE: event, cloudevent or http
  ProcessOptions process;       // argv, working dir, env_vars (the contract variables are added)
  int max_instances = 1;        // concurrent instances
  int min_instances = 0;        // kept warm
  int concurrency = 1;          // requests per instance
  int64_t memory_mb = 256;      // an instance over this is killed and its invocation is an "oom"
  std::chrono::milliseconds timeout{60'000};         // per invocation; the instance is replaced after
  std::chrono::milliseconds start_timeout{30'000};   // for an instance to accept connections
  std::chrono::milliseconds idle_timeout{300'000};   // idle instances above min_instances stop after this
  // The instance listens on the Unix socket named by FERRY_UNIX_SOCKET instead of PORT: for the runtimes Ferry
  // controls (the C++ SDK, the Python runner). Google's Functions Frameworks know only PORT.
  bool unix_socket = false;
};

enum class ExecutionStatus { kOk, kError, kTimeout, kCrash, kOom };
char const* ExecutionStatusName(ExecutionStatus status);  // "ok", "error", "timeout", "crash", "oom"

struct Invocation {
  std::string execution_id;
  std::string method = "POST";
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A caller that waits on a client (an HTTP function call) waits in a bounded queue and only as long as the
  // function's timeout: past either, the call is answered 429 instead of holding a thread. Background deliveries
  // (bounded by their dispatcher's workers) wait for an instance however long it takes.
  bool bounded_wait = false;
  // Set when the client who waits has gone: the call leaves the queue (its thread is free again).
  std::shared_ptr<std::atomic<bool>> client_gone;
  // Set to true by TryInvokeAsync, before it returns, when the call waits in the function's queue.
  std::shared_ptr<bool> queued;
  // Called once the call has its instance, just before it is sent: where its execution starts. On the invoking
  // thread for Invoke, on the loop for TryInvokeAsync.
  std::function<void()> on_start;
};

// An instance listens on a loopback port, which any local user can reach. Ferry sends every request with this
// header, holding the instance's own secret (its environment's FERRY_INSTANCE_SECRET); the C++ SDK and the
// Python runner answer 403 to a request without it, so a private function cannot be called around Ferry's token
// check. (Google's Functions Framework for Node.js does not check it.)
inline constexpr char kInstanceSecretHeader[] = "X-Ferry-Instance-Secret";

// Processes and threads one instance may have at once (its cgroup's pids.max, where the kernel has one to give):
// far above what a runtime needs (Node.js runs about a dozen threads), far below what takes a machine down.
inline constexpr int64_t kMaxInstanceTasks = 1024;

// How many calls may wait for an instance of one function, when they wait bounded.
inline constexpr int kMaxQueuedCalls = 100;

struct InvocationResult {
  ExecutionStatus status = ExecutionStatus::kOk;
  int http_status = 0;  // 0 when there was no answer
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string error;  // why it failed, for the execution record
};

// Receives every line an instance writes.
using InstanceLogSink = std::function<void(std::string const& function, InstanceLine line)>;

// Runs a function's instances as supervised child processes on loopback ports and sends invocations to them
// over the Functions Framework HTTP contract. Enforces max_instances x concurrency in flight (callers wait),
// the timeout and the memory limit (the instance is killed and replaced), and restarts crashed instances with
// backoff. Nothing an instance does can take the caller down. Thread-safe.
class Supervisor {
 public:
  // `output_loop`: where the instances' output is read (an event loop's thread, the one HTTP calls run on), in
  // place of two threads an instance. Its io must outlive the Supervisor.
  explicit Supervisor(InstanceLogSink sink, OutputLoop output_loop = {});
  ~Supervisor();

  // Adds or replaces a function; running instances of a replaced one are stopped.
  void Deploy(InstanceSpec spec);
  void Remove(std::string const& function);

  // Blocks until an instance can take it and it has an answer, failed, or timed out.
  InvocationResult Invoke(std::string const& function, Invocation const& invocation);
  // The same without a thread of its own, from a thread that runs `io` (which must run on one thread): sends it
  // on `io`'s event loop, which calls `done` with the result, and returns true. When every instance is busy and
  // no other may start, it waits its turn in the function's queue without holding a thread and is answered 429
  // as Invoke's bounded wait is. Returns false, and `done` is never called, when an instance has to start first
  // (which blocks): Invoke it then from a thread that may. `io` must stop before the Supervisor is destroyed.
  bool TryInvokeAsync(std::string const& function, Invocation const& invocation, boost::asio::io_context& io,
                      std::function<void(InvocationResult)> done);

  // Instances running and busy, for metrics and tests.
  struct Usage {
    int running = 0;
    int busy = 0;
    int queued = 0;             // calls waiting for a slot
    int64_t started_total = 0;  // instances that came up (listened on their port)
  };
  Usage UsageOf(std::string const& function);

 private:
  struct Instance;
  struct Pool;
  struct Waiter;
  struct Request;  // an invocation's HTTP request, ready to send

  std::shared_ptr<Pool> FindPool(std::string const& function);
  // RESOURCE_EXHAUSTED when `bounded` and the queue is full or the function's timeout passed while waiting.
  // CANCELLED when `client_gone` is set while it waits.
  StatusOr<std::shared_ptr<Instance>> Acquire(Pool& pool, bool bounded, std::atomic<bool> const* client_gone);
  void Release(Pool& pool, std::shared_ptr<Instance> const& instance, bool healthy);
  // Hand a slot of `instance` (already counted in its in_flight) to the first waiter; false when none waits.
  bool Grant(Pool& pool, std::shared_ptr<Instance> const& instance);  // REQUIRES(mu_)
  // Answer the waiters whose caller left (CANCELLED) and take them out of the queue.
  void DropGone(Pool& pool);  // REQUIRES(mu_)
  // Hand every free slot to waiters, after an instance was added.
  void GrantFree(Pool& pool);  // REQUIRES(mu_)
  // An instance went away or failed to start: waiters look again whether they may start one (the warmer starts
  // one for those waiting without a thread).
  void WakeForRoom(Pool& pool);  // REQUIRES(mu_)
  // The pool was removed: waiters without a thread are answered, the others wake to see it.
  void FailWaiters(Pool& pool);  // REQUIRES(mu_)
  // TryInvokeAsync's exchange with `instance`, which has a slot for it, on `io`'s loop.
  void SendAsync(boost::asio::io_context& io, std::shared_ptr<Pool> pool, std::shared_ptr<Instance> instance,
                 std::shared_ptr<Request> request, std::function<void(InvocationResult)> done);
  StatusOr<std::shared_ptr<Instance>> StartInstance(Pool& pool);
  // One try; `picked_port` is the port it gave the instance (0 when it got none).
  StatusOr<std::shared_ptr<Instance>> StartInstanceOnce(Pool& pool, int& picked_port);
  void Watch();
  void KeepWarm();

  // A private directory (0700, under /tmp: a socket's path has at most 107 bytes) for the instances' Unix sockets,
  // removed with the supervisor. Empty when it could not be made: instances then listen on loopback ports.
  struct SocketDir {
    std::string path;
    SocketDir();
    ~SocketDir();
  };
  SocketDir socket_dir_holder_;
  std::string const& socket_dir_ = socket_dir_holder_.path;
  InstanceLogSink sink_;
  OutputLoop const output_loop_;
  std::mutex mu_;
  std::condition_variable cv_;  // the watchdog's and warmer's: stopping, or (the warmer's) an instance is wanted
  std::condition_variable watch_cv_;  // the watchdog's, while there is no instance to watch: one started, or stopping
  bool start_wanted_ = false;   // GUARDED_BY(mu_): a waiter without a thread needs an instance started
  std::map<std::string, std::shared_ptr<Pool>> pools_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                               // GUARDED_BY(mu_)
  std::thread watchdog_;
  std::thread warmer_;  // starts instances up to each function's min_instances
};

}  // namespace ferry
