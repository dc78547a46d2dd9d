#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/auth/tokens.h"
#include "control/function_service.h"

namespace ferry {

struct DaemonOptions {
  std::string data_dir = "./data";     // holds ferry.db (unless `database` is set), executions.db and builds
  // A PostgreSQL database (libpq connection string or postgresql:// URI) that several nodes share; empty: the
  // embedded SQLite store in data_dir.
  std::string database;
  std::string host = "127.0.0.1";      // address to listen on
  uint16_t port = 8085;                // 0: any free port (see port_file)
  std::string project = "ferry-local";  // default project for clients that ask (GET /ferry/v1/info)
  std::string port_file;               // when set, the bound port is written here once serving
  bool sync = true;                    // fsync every commit; off only for throwaway data
  std::chrono::milliseconds pull_wait{5000};  // how long an empty pull waits for a message
  std::optional<DeployRequest> deploy;  // applied once serving (ferry serve --deploy FILE)
  std::vector<TokenGrant> tokens;                      // API tokens; none: loopback only, no roles checked
  std::map<std::string, std::string> webhook_secrets;  // full topic name -> HMAC secret
  bool insecure = false;                               // serve a non-loopback address without tokens
  std::vector<std::string> allowed_hosts;              // further names for Host and Origin (DNS rebinding)
  std::vector<std::string> bucket_roots;               // where buckets may live; default: the working directory
  std::string tls_cert, tls_key;                       // PEM files: serve HTTPS and gRPC over TLS on the port
  std::string public_url;                              // links in answers point here; default: as reached
  std::vector<std::string> push_allow;                 // internal addresses push may reach (CIDR blocks)
  std::string sentry_dsn;                              // failed executions are reported here (Sentry)
  bool latency_stages = false;                         // per-stage latency histograms in /metrics
};

// Runs the daemon until SIGINT or SIGTERM. Returns the process exit code.
int RunDaemon(DaemonOptions const& options);

}  // namespace ferry
