// The composition root: the only place that names every concrete type.
#include "daemon/daemon.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/admin/admin_api.h"
#include "api/auth/http_guard.h"
#include "api/console/console.h"
#include "api/gateway/gateway.h"
#include "api/functions/functions_api.h"
#include "api/logging/logging_api.h"
#include "api/scheduler/scheduler_api.h"
#include "api/grpc/pubsub_grpc.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "api/rest/pubsub_rest.h"
#include "api/storage/storage_api.h"
#include "broker/broker.h"
#include "common/clock.h"
#include "common/latency_stages.h"
#include "control/scheduler.h"
#include "functions/instance_cgroup.h"
#include "push/push_delivery.h"
#include "store/execution_log.h"
#include "store/store.h"
#include "store/sqlite/storage_faults.h"

namespace ferry {
namespace {

// This process's name among the nodes sharing a database: its host, its pid and a random part, so a node that
// restarts is a new node (the claims of the one before it run out rather than carry over).
std::string NodeName() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", random());
  return std::string(host) + "/" + std::to_string(getpid()) + "/" + suffix;
}

bool IsLoopback(std::string const& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

int RunDaemon(DaemonOptions const& options) {
  latency::Enable(options.latency_stages);
  TokenAuthenticator tokens(options.tokens);
  // As Redis's protected mode and Google's emulator: without tokens, whoever reaches the port may deploy code, so
  // only this machine may reach it.
  if (!tokens.enabled() && !IsLoopback(options.host)) {
    if (!options.insecure) {
      std::fprintf(stderr,
                   "ferry: refusing to serve %s without tokens: anyone who reaches it could run code as this user; "
                   "give --token-file (or FERRY_TOKENS), or --insecure to do it anyway\n",
                   options.host.c_str());
      return 1;
    }
    std::fprintf(stderr, "ferry: WARNING: serving %s with no tokens (--insecure): anyone who reaches this port can "
                         "deploy and run code as this user\n", options.host.c_str());
  }

  // Block the stop signals in every thread we start; the main thread takes them with sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // The data directory holds messages, env_vars and logs: only this user may read it. New files are private too
  // (function instances get 022 back), and a directory made by an older Ferry is closed up.
  ::umask(077);
  std::error_code dir_ec;
  std::filesystem::create_directories(options.data_dir, dir_ec);
  std::filesystem::permissions(options.data_dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, dir_ec);
  if (InstallStorageFaultsFromEnvironment()) {
    std::fprintf(stderr, "ferry: warning: storage faults are injected on demand (FERRY_FAULT_FILE): for tests only\n");
  }
  if (int n = InstanceCgroup::CleanUpAfterDeadDaemons(); n > 0) {
    std::fprintf(stderr, "ferry: removed %d cgroup(s) of instances of a Ferry that was killed, and what ran in them\n",
                 n);
  }
  auto store = options.database.empty() ? MakeSqliteStore({.data_dir = options.data_dir, .sync = options.sync})
                                        : MakePostgresStore(options.database);
  if (!store.ok()) {
    std::fprintf(stderr, "ferry: %s\n", store.status().message().c_str());
    return 1;
  }
  auto executions = options.database.empty() ? MakeSqliteExecutionLog({.data_dir = options.data_dir})
                                             : MakePostgresExecutionLog(options.database, {});
  if (!executions.ok()) {
    std::fprintf(stderr, "ferry: %s\n", executions.status().message().c_str());
    return 1;
  }
  auto push_policy = PushPolicy::Make(options.push_allow);
  if (!push_policy.ok()) {
    std::fprintf(stderr, "ferry: %s\n", push_policy.status().message().c_str());
    return 1;
  }
  (*push_policy)->set_self_port(options.port);
  SystemClock clock;
  BrokerOptions broker_options;
  broker_options.pull_wait = options.pull_wait;
  broker_options.check_push_endpoint = [&](std::string const& url) { return (*push_policy)->CheckEndpoint(url); };
  Broker broker(**store, clock, broker_options);
  FunctionService* functions_ptr = nullptr;  // set just below: the scheduler invokes function targets through it
  Scheduler scheduler(**store, clock, [&](std::string const& function, std::string const& data) {
    auto called = functions_ptr->Call(function, data);
    return called.ok() && called->status == "ok";
  });
  // An HTTP job's request goes where a push subscription's may (ferry serve --push-allow): no further.
  scheduler.set_uri_check([&](std::string const& uri) { return (*push_policy)->CheckEndpoint(uri); });
  std::string const node = options.database.empty() ? std::string() : NodeName();  // a cluster's nodes are named
  // In a cluster one node at a time watches each bucket's (shared) directory.
  BucketService buckets(**store, broker, {.claims = node.empty() ? nullptr : store->get(), .node = node});
  std::vector<std::string> bucket_roots = options.bucket_roots;
  if (bucket_roots.empty()) bucket_roots.push_back(std::filesystem::current_path().string());
  // The HTTP server's event loop, shared with the functions' instances, whose output it reads: an HTTP call and its
  // instance's log lines are handled on one thread. Declared before both, so it outlives them.
  boost::asio::io_context event_loop{1};
  FunctionService functions(**store, broker, **executions, clock,
                            {.data_dir = options.data_dir,
                             .schedules_changed = [&] { scheduler.Wake(); },
                             .buckets_changed = [&] { buckets.Sync(); },
                             .bucket_roots = bucket_roots,
                             .node = node,
                             .sentry_dsn = options.sentry_dsn,
                             .output_loop = &event_loop});
  functions_ptr = &functions;
  PubsubRestApi rest(broker);
  SchedulerApi scheduler_api(scheduler);
  LoggingApi logging_api(functions, **executions);
  AdminApi admin(functions, scheduler, **executions, broker, options.project);
  FunctionGateway gateway(functions, broker, {options.project, &tokens, options.webhook_secrets});
  HttpGuard guard({.tokens = &tokens, .bound_host = options.host, .allowed_hosts = options.allowed_hosts});
  std::atomic<uint16_t> bound_port{options.port};  // set once the server is bound
  // How a client reaches this server, for the URLs Ferry hands out (uploads, downloads, HTTP functions).
  auto base_url = [&](HttpRequest const& req) {
    if (!options.public_url.empty()) return options.public_url;
    std::string host = req.Header("host");
    std::string scheme = options.tls_cert.empty() ? "http://" : "https://";
    if (!host.empty() && guard.HostAllowed(host)) return scheme + host;
    return scheme + options.host + ":" + std::to_string(bound_port.load());
  };
  StorageApi storage(buckets, base_url);
  FunctionsApi functions_api(functions, options.data_dir, base_url);
  std::string info = nlohmann::json{{"project", options.project}, {"version", "0.1.0"}}.dump();

  auto grpc = PubsubGrpcServer::Start(broker, tokens);
  if (!grpc.ok()) {
    std::fprintf(stderr, "ferry: %s\n", grpc.status().message().c_str());
    return 1;
  }

  HttpServerOptions http_options;
  http_options.host = options.host;
  http_options.port = options.port;
  http_options.http2_connections = [&](int fd) { (*grpc)->AdoptConnection(fd); };
  http_options.tls_cert_file = options.tls_cert;
  // Functions' source zips may be as large as Cloud Functions takes (100 MiB), when their upload id waits for
  // them; everything else keeps the default.
  http_options.body_limit_for = [&functions_api, otherwise = http_options.max_body_bytes](std::string_view target) {
    return functions_api.BodyLimit(target, otherwise);
  };
  http_options.tls_key_file = options.tls_key;
  http_options.io = &event_loop;
  // Lanes: 0 everything else (publishing, storage), 1 long-poll pulls, 2 function calls that wait for an
  // instance, 3 the admin API (deploys, the CLI). A full lane makes its own kind wait, not the others.
  http_options.lane_threads = {16, 32, 32, 8};
  http_options.lane = [](HttpRequest const& req) -> std::size_t {
    auto ends_with = [&](std::string_view suffix) {
      return req.path.size() >= suffix.size() && req.path.compare(req.path.size() - suffix.size(), suffix.size(),
                                                                    suffix) == 0;
    };
    if (ends_with(":pull")) return 1;
    if (req.path.rfind("/webhooks/", 0) == 0) return 0;  // a publish
    if (ends_with(":call") || FunctionGateway::Serves(req.path)) return 2;
    if (req.path.rfind("/ferry/", 0) == 0) return 3;
    return 0;
  };
  // A call waiting for a busy instance leaves the queue when its client leaves.
  http_options.watch_client = [](HttpRequest const& req) { return FunctionGateway::Serves(req.path); };
  // HTTP function calls go from the I/O thread to a free instance and back without a worker thread.
  http_options.fast_handler = [&](HttpRequest const& req, boost::asio::io_context& io, HttpReply reply) {
    if (req.path == "/healthz") {  // on the I/O thread: it answers however busy the lanes are
      reply(HttpResponse{200, "text/plain", "Ok\n", {}});
      return true;
    }
    if (!FunctionGateway::Serves(req.path)) return false;
    if (auto refused = guard.Refusal(req)) {
      reply(*std::move(refused));
      return true;
    }
    return gateway.TryHandle(req, io, std::move(reply));
  };
  auto server = HttpServer::Start(http_options, [&](HttpRequest const& req) {
    if (auto refused = guard.Refusal(req)) return *std::move(refused);
    if (req.path == "/ferry/v1/info") return HttpResponse{200, "application/json", info, {}};
    if (Console::Serves(req.path)) return Console::Handle(req);
    if (req.path.rfind("/ferry/", 0) == 0) return admin.Handle(req);
    if (FunctionGateway::Serves(req.path)) return gateway.Handle(req);
    if (StorageApi::Serves(req.path)) return storage.Handle(req);
    if (SchedulerApi::Serves(req.path)) return scheduler_api.Handle(req);
    if (LoggingApi::Serves(req.path)) return logging_api.Handle(req);
    if (FunctionsApi::Serves(req.path)) return functions_api.Handle(req);
    HttpResponse res = rest.Handle(req);
    if (req.path == "/metrics" && res.status == 200) {
      res.body += functions.RenderMetrics();
      res.body += scheduler.RenderMetrics();
      res.body += latency::RenderMetrics();
      if (!node.empty()) res.body = WithLabel(res.body, "node", node);
    }
    return res;
  });
  if (!server.ok()) {
    std::fprintf(stderr, "ferry: %s\n", server.status().message().c_str());
    return 1;
  }
  uint16_t port = (*server)->port();
  bound_port = port;
  (*push_policy)->set_self_port(port);
  if (!options.port_file.empty()) {
    std::string tmp = options.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), options.port_file.c_str());
  }
  std::fprintf(stderr, "ferry: serving Pub/Sub REST and gRPC%s on %s:%u (data: %s%s, project: %s%s)\n",
               options.tls_cert.empty() ? "" : " over TLS", options.host.c_str(), port, options.data_dir.c_str(),
               options.database.empty() ? "" : ", store: PostgreSQL",
               options.project.c_str(), tokens.enabled() ? ", tokens required" : ", no tokens: loopback only");

  PushDelivery push(broker, **push_policy);
  push.Start();
  buckets.Start();
  functions.Start();
  if (options.deploy) {
    auto deployed = functions.Deploy(*options.deploy);
    if (!deployed.ok()) {
      std::fprintf(stderr, "ferry: deploy failed: %s\n", deployed.status().message().c_str());
    } else {
      for (auto const& item : deployed->plan) {
        if (item.action == "unchanged") continue;
        std::fprintf(stderr, "ferry: deploy: %s %s %s\n", item.action.c_str(), item.kind.c_str(), item.name.c_str());
      }
      std::fprintf(stderr, "ferry: deployed %zu function(s) of project %s\n", options.deploy->functions.size(),
                   options.deploy->project.c_str());
    }
  }

  scheduler.Start();

  // With a database other nodes share, their deploys reach this node within a second (FunctionService::Follow).
  std::mutex follow_mu;
  std::condition_variable follow_cv;
  bool follow_stop = false;
  std::thread follower;
  if (!options.database.empty()) {
    follower = std::thread([&] {
      pthread_setname_np(pthread_self(), "ferry-follow");
      std::unique_lock lock(follow_mu);
      while (!follow_cv.wait_for(lock, std::chrono::seconds(1), [&] { return follow_stop; })) {
        lock.unlock();
        functions.Follow();
        lock.lock();
      }
    });
  }

  int sig = 0;
  sigwait(&signals, &sig);
  if (follower.joinable()) {
    {
      std::lock_guard lock(follow_mu);
      follow_stop = true;
    }
    follow_cv.notify_all();
    follower.join();
  }
  std::fprintf(stderr, "ferry: stopping on signal %d\n", sig);
  broker.Shutdown();  // waiting pulls answer now, so the servers' workers can finish
  (*grpc)->Stop();    // ends streaming pulls, which would otherwise spin on a broker that no longer waits
  push.Stop();
  buckets.Stop();
  functions.Shutdown();  // first: a schedule's invocation in flight then ends at once
  scheduler.Stop();
  (*server)->Stop();
  return 0;
}

}  // namespace ferry
