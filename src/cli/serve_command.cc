// `ferry serve`: the daemon, with its flags checked before it starts.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "common/split.h"
#include "common/time_util.h"
#include "daemon/daemon.h"
#include "deploy/deploy_file.h"
#include "model/sentry_dsn.h"

namespace ferry {

void AddServeCommand(CLI::App& app, int& rc) {
  // The flags' values live as long as the app: parsing fills them, the callback reads them.
  struct State {
    DaemonOptions d;
    std::string pull_wait = "5s";
    std::string serve_deploy, token_file, webhook_secret_file;
    std::vector<std::string> tokens, webhook_secrets;
  };
  auto st = std::make_shared<State>();
  auto& [d, pull_wait, serve_deploy, token_file, webhook_secret_file, tokens, webhook_secrets] = *st;
  auto* serve = app.add_subcommand("serve", "Run the daemon");
  serve->add_option("--data-dir", d.data_dir, "Directory for ferry.db, executions.db and builds")->capture_default_str();
  serve->add_option("--database", d.database,
                    "A PostgreSQL database that several Ferry nodes share (postgresql://USER@HOST/DB or a libpq "
                    "connection string) instead of ferry.db; also FERRY_DATABASE_URL. A password shows in ps: put it in "
                    "~/.pgpass or PGPASSWORD")
      ->envname("FERRY_DATABASE_URL");
  serve->add_option("--host", d.host, "Address to listen on")->capture_default_str();
  serve->add_option("--port", d.port, "Port to listen on (0: any free one)")->capture_default_str();
  serve->add_option("--project", d.project, "Default project for short names")->capture_default_str();
  serve->add_option("--port-file", d.port_file, "Write the bound port to this file once serving");
  serve->add_option("--pull-wait", pull_wait, "How long an empty pull waits for a message")->capture_default_str();
  serve->add_flag("!--no-fsync", d.sync, "Do not fsync commits (throwaway data only)");
  serve->add_flag("--latency-stages", d.latency_stages,
                  "Time each stage of publish, delivery and function calls: ferry_stage_latency_seconds in /metrics");
  serve->add_option("--deploy", serve_deploy, "Deploy this ferry.yaml once serving");
  serve->add_option("--token-file", token_file,
                    "File of API tokens, one ROLE[,ROLE]=SECRET per line (roles: admin, viewer, publisher, subscriber, "
                    "invoker); also FERRY_TOKENS. With tokens every API needs a bearer token with its role");
  serve->add_option("--token", tokens, "An API token as ROLE[,ROLE]=SECRET; repeatable. Shows in ps: prefer "
                                       "--token-file or FERRY_TOKENS");
  serve->add_option("--webhook-secret-file", webhook_secret_file,
                    "File of TOPIC=SECRET lines: webhooks to TOPIC must be signed with HMAC-SHA256 of SECRET");
  serve->add_option("--webhook-secret", webhook_secrets,
                    "TOPIC=SECRET, as in --webhook-secret-file; repeatable. Shows in ps: prefer the file");
  serve->add_option("--allow-host", d.allowed_hosts,
                    "A further name clients may use to reach Ferry (Host and Origin headers); repeatable");
  serve->add_option("--bucket-root", d.bucket_roots,
                    "A directory buckets may live in (their paths must be in one); repeatable. Default: the working "
                    "directory");
  serve->add_option("--tls-cert", d.tls_cert, "PEM certificate chain: serve HTTPS and gRPC over TLS on the port");
  serve->add_option("--tls-key", d.tls_key, "PEM private key of --tls-cert");
  serve->add_option("--public-url", d.public_url,
                    "Scheme and address that links in answers point at (e.g. https://ferry.example.com); default: "
                    "the address the client used, when it names this server");
  serve->add_option("--push-allow", d.push_allow,
                    "An internal address or CIDR block push subscriptions may reach (loopback, private and link-local "
                    "ones are refused otherwise); repeatable");
  serve->add_option("--sentry-dsn", d.sentry_dsn,
                    "Report failed executions (errors, timeouts, crashes, out of memory) to this Sentry DSN; a "
                    "function's own sentry_dsn wins")
      ->envname("FERRY_SENTRY_DSN");
  serve->add_flag("--insecure", d.insecure, "Serve a non-loopback --host without tokens (anyone who reaches it can "
                                            "run code)");
  serve->callback([st, rc_out = &rc] {
    int& rc = *rc_out;
    auto& [d, pull_wait, serve_deploy, token_file, webhook_secret_file, tokens, webhook_secrets] = *st;
    auto split = [](std::string const& text, char const* what) -> StatusOr<std::pair<std::string, std::string>> {
      auto eq = text.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
        return InvalidArgumentError(std::string(what) + " must be NAME=SECRET");
      }
      return std::pair{text.substr(0, eq), text.substr(eq + 1)};
    };
    auto read_file = [](std::string const& path) -> StatusOr<std::string> {
      std::ifstream in(path, std::ios::binary);
      if (!in) return InvalidArgumentError("cannot read " + path);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    std::vector<std::pair<std::string, std::string>> token_sources;  // (origin, text)
    if (!token_file.empty()) {
      auto text = read_file(token_file);
      if (!text.ok()) {
        rc = Fail(text.status());
        return;
      }
      token_sources.emplace_back(token_file, *text);
    }
    if (char const* env = std::getenv("FERRY_TOKENS"); env != nullptr) token_sources.emplace_back("FERRY_TOKENS", env);
    for (auto const& token : tokens) token_sources.emplace_back("--token", token);
    if (!tokens.empty()) {
      std::fprintf(stderr, "ferry: warning: --token shows its secret to every user of this machine (ps); use "
                           "--token-file or FERRY_TOKENS\n");
    }
    for (auto const& [origin, text] : token_sources) {
      auto grants = ParseTokenList(text, origin);
      if (!grants.ok()) {
        rc = Fail(grants.status());
        return;
      }
      d.tokens.insert(d.tokens.end(), grants->begin(), grants->end());
      for (auto const& g : *grants) {
        if (g.short_secret) {
          std::fprintf(stderr, "ferry: warning: a token from %s is shorter than %zu characters and easy to guess "
                               "(try: openssl rand -hex 24)\n", origin.c_str(), kMinSecretBytes);
        }
      }
    }
    if (!IsValidProjectId(d.project)) {
      rc = Fail(InvalidArgumentError("--project must be a project id (lowercase letters, digits and '-')"));
      return;
    }
    if (d.tls_cert.empty() != d.tls_key.empty()) {
      rc = Fail(InvalidArgumentError("--tls-cert and --tls-key go together"));
      return;
    }
    if (!d.sentry_dsn.empty()) {
      if (auto dsn = ParseSentryDsn(d.sentry_dsn); !dsn.ok()) {
        rc = Fail(InvalidArgumentError("--sentry-dsn: " + dsn.status().message()));
        return;
      }
    }
    if (!webhook_secret_file.empty()) {
      auto text = read_file(webhook_secret_file);
      if (!text.ok()) {
        rc = Fail(text.status());
        return;
      }
      for (auto line : Split(*text, '\n')) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
        if (!line.empty() && line.front() != '#') webhook_secrets.emplace_back(line);
      }
    }
    for (auto const& secret : webhook_secrets) {
      auto parts = split(secret, "--webhook-secret");
      if (!parts.ok()) {
        rc = Fail(parts.status());
        return;
      }
      std::string topic = parts->first.rfind("projects/", 0) == 0
                              ? parts->first
                              : MakeResourceName(d.project, ResourceKind::kTopic, parts->first);
      d.webhook_secrets[topic] = parts->second;
    }
    if (!serve_deploy.empty()) {
      auto request = ParseDeployFile(serve_deploy, d.project);
      if (!request.ok()) {
        rc = Fail(request.status());
        return;
      }
      d.deploy = *std::move(request);
    }
    auto wait = ParseHumanDuration(pull_wait);
    if (!wait.ok()) {
      rc = Fail(wait.status());
      return;
    }
    d.pull_wait = std::chrono::milliseconds(*wait);
    rc = RunDaemon(d);
  });
}

}  // namespace ferry
