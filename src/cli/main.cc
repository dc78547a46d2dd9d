// The `ferry` command: `ferry serve` runs the daemon; every other command is a client of its HTTP APIs.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "common/percent_encode.h"
#include "common/split.h"
#include "common/base64.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "daemon/daemon.h"
#include "deploy/deploy_file.h"
#include "model/sentry_dsn.h"

namespace ferry {
namespace {

using Json = nlohmann::ordered_json;

struct Globals {
  std::string endpoint;
  std::string project;
  std::string token_file;  // a file holding the bearer token (else FERRY_TOKEN)
  std::string format = "table";
};

std::string EnvOr(char const* name, std::string fallback) {
  char const* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

// Percent-encodes a query value.
std::string UrlEncode(std::string const& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Prints rows under upper-case headers, columns padded to their widest cell.
void PrintTable(std::vector<std::string> const& headers, std::vector<std::vector<std::string>> const& rows) {
  std::vector<std::size_t> width(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (auto const& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto print_row = [&](std::vector<std::string> const& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print_row(headers);
  for (auto const& row : rows) print_row(row);
}

// "a.b: v" lines for a JSON object, for describe.
void Flatten(Json const& j, std::string const& prefix, std::vector<std::vector<std::string>>& rows) {
  if (j.is_object() && !j.empty()) {
    for (auto const& [k, v] : j.items()) Flatten(v, prefix.empty() ? k : prefix + "." + k, rows);
  } else if (j.is_string()) {
    rows.push_back({prefix, j.get<std::string>()});
  } else {
    rows.push_back({prefix, j.is_object() ? "{}" : j.dump()});
  }
}

std::string Short(std::string const& name) {
  auto slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

class Cli {
 public:
  explicit Cli(Globals& g) : g_(g) {}  // g is filled in by parsing, after construction

  Status Connect() {
    std::string token = EnvOr("FERRY_TOKEN", "");
    if (!g_.token_file.empty()) {
      std::ifstream in(g_.token_file, std::ios::binary);
      if (!in) return InvalidArgumentError("cannot read --token-file " + g_.token_file);
      std::getline(in, token);
      while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    }
    FERRY_ASSIGN_OR_RETURN(client_, HttpClient::Make(g_.endpoint, token));
    return OkStatus();
  }

  // Sends a request; a non-2xx answer becomes its google.rpc.Status.
  StatusOr<Json> Call(std::string const& method, std::string const& target, Json const* body = nullptr) {
    if (!client_) FERRY_RETURN_IF_ERROR(Connect());
    FERRY_ASSIGN_OR_RETURN(auto res, client_->Send(method, target, body ? body->dump() : ""));
    Json json;
    try {
      json = res.body.empty() ? Json::object() : Json::parse(res.body);
    } catch (std::exception const&) {
      if (res.status >= 200 && res.status < 300) return InternalError("unreadable answer from ferry: " + res.body);
      return Status(StatusCode::kUnknown, "HTTP " + std::to_string(res.status) + ": " + res.body);
    }
    if (res.status >= 200 && res.status < 300) return json;
    auto const& err = json.contains("error") ? json["error"] : json;
    std::string message = err.value("message", "HTTP " + std::to_string(res.status));
    std::string status = err.value("status", "UNKNOWN");
    return Status(StatusCode::kUnknown, message + " (" + status + ")");
  }

  StatusOr<std::string> Project() {
    if (!g_.project.empty()) return g_.project;
    FERRY_ASSIGN_OR_RETURN(auto info, Call("GET", "/ferry/v1/info"));
    g_.project = info.value("project", "");
    if (g_.project.empty()) return InvalidArgumentError("no project: pass --project");
    return g_.project;
  }

  // A short id in the default project, or a full "projects/..." name as is.
  StatusOr<std::string> Name(std::string const& id, char const* collection) {
    if (id.rfind("projects/", 0) == 0) return id;
    FERRY_ASSIGN_OR_RETURN(auto project, Project());
    return "projects/" + project + "/" + collection + "/" + id;
  }

  bool json_output() const { return g_.format == "json"; }

  // A request whose body (either way) is not JSON: the answer's status and bytes.
  StatusOr<HttpResult> Raw(std::string const& method, std::string const& target, std::string const& body,
                           std::string const& content_type, HttpHeaders const& headers = {}) {
    if (!client_) FERRY_RETURN_IF_ERROR(Connect());
    return client_->Send(method, target, body, content_type, headers);
  }

 private:
  Globals& g_;
  std::unique_ptr<HttpClient> client_;
};

int Fail(Status const& st) {
  std::fprintf(stderr, "ferry: error: %s\n", st.message().c_str());
  return 1;
}

void PrintDescribe(Cli& cli, Json const& j) {
  if (cli.json_output()) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  Flatten(j, "", rows);
  PrintTable({"FIELD", "VALUE"}, rows);
}

struct SubscriptionFlags {
  std::string topic;
  int ack_deadline = 0;
  std::string dead_letter_topic;
  int max_delivery_attempts = 0;
  std::string min_retry_delay;
  std::string max_retry_delay;
  std::string retention;
  bool clear_dead_letter = false;
  bool clear_retry = false;
};

void AddSubscriptionFlags(CLI::App* cmd, SubscriptionFlags& f, bool update) {
  if (!update) cmd->add_option("--topic", f.topic, "Topic to subscribe to")->required();
  cmd->add_option("--ack-deadline", f.ack_deadline, "Seconds a subscriber has to ack (10-600)");
  cmd->add_option("--dead-letter-topic", f.dead_letter_topic, "Topic for messages that keep failing");
  cmd->add_option("--max-delivery-attempts", f.max_delivery_attempts, "Deliveries before dead-lettering (5-100)");
  cmd->add_option("--min-retry-delay", f.min_retry_delay, "Backoff after the first failure, e.g. 10s, 2m");
  cmd->add_option("--max-retry-delay", f.max_retry_delay, "Longest backoff, e.g. 600s");
  cmd->add_option("--message-retention-duration", f.retention, "How long unacked messages are kept, e.g. 7d");
  if (update) {
    cmd->add_flag("--clear-dead-letter-policy", f.clear_dead_letter, "Remove the dead-letter policy");
    cmd->add_flag("--clear-retry-policy", f.clear_retry, "Remove the retry policy");
  }
}

// The subscription body and update mask the flags describe.
StatusOr<std::pair<Json, std::vector<std::string>>> SubscriptionBody(Cli& cli, SubscriptionFlags const& f) {
  Json body;
  std::vector<std::string> mask;
  if (!f.topic.empty()) {
    FERRY_ASSIGN_OR_RETURN(body["topic"], cli.Name(f.topic, "topics"));
  }
  if (f.ack_deadline != 0) {
    body["ackDeadlineSeconds"] = f.ack_deadline;
    mask.push_back("ackDeadlineSeconds");
  }
  if (!f.retention.empty()) {
    FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.retention));
    body["messageRetentionDuration"] = FormatProtoDuration(ms);
    mask.push_back("messageRetentionDuration");
  }
  if (!f.dead_letter_topic.empty()) {
    Json dlp;
    FERRY_ASSIGN_OR_RETURN(dlp["deadLetterTopic"], cli.Name(f.dead_letter_topic, "topics"));
    if (f.max_delivery_attempts != 0) dlp["maxDeliveryAttempts"] = f.max_delivery_attempts;
    body["deadLetterPolicy"] = dlp;
    mask.push_back("deadLetterPolicy");
  } else if (f.max_delivery_attempts != 0) {
    return InvalidArgumentError("--max-delivery-attempts needs --dead-letter-topic");
  } else if (f.clear_dead_letter) {
    mask.push_back("deadLetterPolicy");
  }
  if (!f.min_retry_delay.empty() || !f.max_retry_delay.empty()) {
    Json rp = Json::object();
    if (!f.min_retry_delay.empty()) {
      FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.min_retry_delay));
      rp["minimumBackoff"] = FormatProtoDuration(ms);
    }
    if (!f.max_retry_delay.empty()) {
      FERRY_ASSIGN_OR_RETURN(int64_t ms, ParseHumanDuration(f.max_retry_delay));
      rp["maximumBackoff"] = FormatProtoDuration(ms);
    }
    body["retryPolicy"] = rp;
    mask.push_back("retryPolicy");
  } else if (f.clear_retry) {
    mask.push_back("retryPolicy");
  }
  return std::make_pair(body, mask);
}

void PrintSubscriptions(Cli& cli, Json const& list) {
  if (cli.json_output()) {
    std::cout << list.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (auto const& s : list) {
    std::string dlt, attempts, retry;
    if (s.contains("deadLetterPolicy")) {
      dlt = Short(s["deadLetterPolicy"].value("deadLetterTopic", ""));
      attempts = std::to_string(s["deadLetterPolicy"].value("maxDeliveryAttempts", 0));
    }
    if (s.contains("retryPolicy")) {
      retry = s["retryPolicy"].value("minimumBackoff", "") + ".." + s["retryPolicy"].value("maximumBackoff", "");
    }
    rows.push_back({s.value("name", ""), Short(s.value("topic", "")), std::to_string(s.value("ackDeadlineSeconds", 0)),
                    dlt, attempts, retry});
  }
  PrintTable({"NAME", "TOPIC", "ACK_DEADLINE", "DEAD_LETTER_TOPIC", "MAX_ATTEMPTS", "RETRY_DELAY"}, rows);
}

// An upload's failure, in the server's own words when it gave them.
Status UploadFailed(HttpResult const& res) {
  auto body = Json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    return Status(StatusCode::kUnknown, "upload failed: " + body["error"].value("message", res.body));
  }
  return Status(StatusCode::kUnknown, "upload failed: HTTP " + std::to_string(res.status) + ": " + res.body);
}

int Main(int argc, char** argv) {
  CLI::App app{"Ferry: self-hosted Cloud Functions and Pub/Sub.", "ferry"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand: `ferry pull sub --format json`
  Globals g;
  g.endpoint = EnvOr("FERRY_ENDPOINT", "http://127.0.0.1:8085");
  g.project = EnvOr("FERRY_PROJECT", "");
  app.add_option("--endpoint", g.endpoint, "Ferry daemon to talk to (env FERRY_ENDPOINT)")->capture_default_str();
  app.add_option("--project", g.project, "Project for short names (env FERRY_PROJECT; default: the daemon's)");
  app.add_option("--token-file", g.token_file, "File holding the bearer token to send (else env FERRY_TOKEN)");
  app.add_option("--format", g.format, "Output: table or json")->capture_default_str()->check(CLI::IsMember({"table", "json"}));
  int rc = 0;

  // ---- serve ----
  DaemonOptions d;
  std::string pull_wait = "5s";
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
  std::string serve_deploy;
  serve->add_option("--deploy", serve_deploy, "Deploy this ferry.yaml once serving");
  std::vector<std::string> tokens, webhook_secrets;
  std::string token_file, webhook_secret_file;
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
  serve->callback([&] {
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

  Cli cli(g);
  auto run = [&](auto body) {
    return [&, body] {
      Status st = body();
      if (!st.ok()) rc = Fail(st);
    };
  };

  // ---- topics ----
  auto* topics = app.add_subcommand("topics", "Manage topics");
  topics->require_subcommand(1);
  std::vector<std::string> topic_ids;
  auto* tcreate = topics->add_subcommand("create", "Create topics");
  tcreate->add_option("TOPIC", topic_ids, "Topic ids or full names")->required();
  tcreate->callback(run([&]() -> Status {
    for (auto const& id : topic_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "topics"));
      FERRY_RETURN_IF_ERROR(cli.Call("PUT", "/v1/" + name, nullptr));
      std::cerr << "Created topic [" << name << "].\n";
    }
    return OkStatus();
  }));
  auto* tlist = topics->add_subcommand("list", "List topics");
  tlist->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    Json all = Json::array();
    std::string token;
    do {
      std::string target = "/v1/projects/" + project + "/topics?pageSize=1000";
      if (!token.empty()) target += "&pageToken=" + UrlEncode(token);
      FERRY_ASSIGN_OR_RETURN(auto page, cli.Call("GET", target));
      for (auto const& t : page.value("topics", Json::array())) all.push_back(t);
      token = page.value("nextPageToken", "");
    } while (!token.empty());
    if (cli.json_output()) {
      std::cout << all.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& t : all) rows.push_back({t.value("name", ""), t.value("messageRetentionDuration", "")});
    PrintTable({"NAME", "RETENTION"}, rows);
    return OkStatus();
  }));
  std::string one_id;
  auto* tdescribe = topics->add_subcommand("describe", "Show a topic");
  tdescribe->add_option("TOPIC", one_id)->required();
  tdescribe->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "topics"));
    FERRY_ASSIGN_OR_RETURN(auto topic, cli.Call("GET", "/v1/" + name));
    PrintDescribe(cli, topic);
    return OkStatus();
  }));
  auto* tdelete = topics->add_subcommand("delete", "Delete topics");
  tdelete->add_option("TOPIC", topic_ids)->required();
  tdelete->callback(run([&]() -> Status {
    for (auto const& id : topic_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "topics"));
      FERRY_RETURN_IF_ERROR(cli.Call("DELETE", "/v1/" + name));
      std::cerr << "Deleted topic [" << name << "].\n";
    }
    return OkStatus();
  }));

  // ---- subscriptions ----
  auto* subs = app.add_subcommand("subscriptions", "Manage subscriptions");
  subs->require_subcommand(1);
  SubscriptionFlags sf;
  auto* screate = subs->add_subcommand("create", "Create a subscription");
  screate->add_option("SUBSCRIPTION", one_id)->required();
  AddSubscriptionFlags(screate, sf, false);
  screate->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto body_mask, SubscriptionBody(cli, sf));
    FERRY_RETURN_IF_ERROR(cli.Call("PUT", "/v1/" + name, &body_mask.first));
    std::cerr << "Created subscription [" << name << "].\n";
    return OkStatus();
  }));
  auto* supdate = subs->add_subcommand("update", "Change a subscription");
  supdate->add_option("SUBSCRIPTION", one_id)->required();
  AddSubscriptionFlags(supdate, sf, true);
  supdate->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto body_mask, SubscriptionBody(cli, sf));
    auto& [sub, mask] = body_mask;
    if (mask.empty()) return InvalidArgumentError("nothing to update: pass at least one flag");
    std::string joined;
    for (auto const& m : mask) joined += (joined.empty() ? "" : ",") + m;
    Json body{{"subscription", sub}, {"updateMask", joined}};
    FERRY_RETURN_IF_ERROR(cli.Call("PATCH", "/v1/" + name, &body));
    std::cerr << "Updated subscription [" << name << "].\n";
    return OkStatus();
  }));
  auto* slist = subs->add_subcommand("list", "List subscriptions");
  slist->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    Json all = Json::array();
    std::string token;
    do {
      std::string target = "/v1/projects/" + project + "/subscriptions?pageSize=1000";
      if (!token.empty()) target += "&pageToken=" + UrlEncode(token);
      FERRY_ASSIGN_OR_RETURN(auto page, cli.Call("GET", target));
      for (auto const& s : page.value("subscriptions", Json::array())) all.push_back(s);
      token = page.value("nextPageToken", "");
    } while (!token.empty());
    PrintSubscriptions(cli, all);
    return OkStatus();
  }));
  auto* sdescribe = subs->add_subcommand("describe", "Show a subscription");
  sdescribe->add_option("SUBSCRIPTION", one_id)->required();
  sdescribe->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "subscriptions"));
    FERRY_ASSIGN_OR_RETURN(auto sub, cli.Call("GET", "/v1/" + name));
    PrintDescribe(cli, sub);
    return OkStatus();
  }));
  std::vector<std::string> sub_ids;
  auto* sdelete = subs->add_subcommand("delete", "Delete subscriptions");
  sdelete->add_option("SUBSCRIPTION", sub_ids)->required();
  sdelete->callback(run([&]() -> Status {
    for (auto const& id : sub_ids) {
      FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(id, "subscriptions"));
      FERRY_RETURN_IF_ERROR(cli.Call("DELETE", "/v1/" + name));
      std::cerr << "Deleted subscription [" << name << "].\n";
    }
    return OkStatus();
  }));

  // ---- publish ----
  std::string message, ordering_key;
  std::vector<std::string> attributes;
  auto* publish = app.add_subcommand("publish", "Publish a message to a topic");
  publish->add_option("TOPIC", one_id)->required();
  publish->add_option("--message", message, "Message data (text)");
  publish->add_option("--attribute", attributes, "An attribute KEY=VALUE (repeatable, or comma-separated)")
      ->delimiter(',');
  publish->add_option("--ordering-key", ordering_key, "Ordering key");
  publish->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "topics"));
    Json msg = Json::object();
    if (!message.empty()) msg["data"] = Base64Encode(message);
    Json attrs = Json::object();
    for (auto const& kv : attributes) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return InvalidArgumentError("--attribute must be KEY=VALUE: " + kv);
      attrs[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    if (!attrs.empty()) msg["attributes"] = attrs;
    if (!ordering_key.empty()) msg["orderingKey"] = ordering_key;
    if (message.empty() && attrs.empty()) return InvalidArgumentError("pass --message or --attribute");
    Json body{{"messages", Json::array({msg})}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/v1/" + name + ":publish", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      for (auto const& id : res.value("messageIds", Json::array())) rows.push_back({id.get<std::string>()});
      PrintTable({"MESSAGE_ID"}, rows);
    }
    return OkStatus();
  }));

  // ---- pull ----
  int limit = 1;
  bool auto_ack = false;
  auto* pull = app.add_subcommand("pull", "Pull messages from a subscription");
  pull->add_option("SUBSCRIPTION", one_id)->required();
  pull->add_option("--limit", limit, "Most messages to pull")->capture_default_str()->check(CLI::Range(1, 1000));
  pull->add_flag("--auto-ack", auto_ack, "Acknowledge what was pulled");
  pull->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto name, cli.Name(one_id, "subscriptions"));
    Json body{{"maxMessages", limit}, {"returnImmediately", false}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/v1/" + name + ":pull", &body));
    Json received = res.value("receivedMessages", Json::array());
    if (auto_ack && !received.empty()) {
      Json ids = Json::array();
      for (auto const& r : received) ids.push_back(r["ackId"]);
      Json ack{{"ackIds", ids}};
      FERRY_RETURN_IF_ERROR(cli.Call("POST", "/v1/" + name + ":acknowledge", &ack));
    }
    if (cli.json_output()) {
      std::cout << received.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& r : received) {
      auto const& m = r["message"];
      auto data = Base64Decode(m.value("data", ""));
      std::string attrs;
      Json const attributes = m.value("attributes", Json::object());
      for (auto const& [k, v] : attributes.items()) {
        attrs += (attrs.empty() ? "" : ",") + k + "=" + v.get<std::string>();
      }
      std::string attempt = r.contains("deliveryAttempt") ? std::to_string(r["deliveryAttempt"].get<int>()) : "";
      rows.push_back({data.value_or("<invalid base64>"), m.value("messageId", ""), m.value("orderingKey", ""), attrs,
                      attempt, auto_ack ? "SUCCESS" : r.value("ackId", "")});
    }
    if (rows.empty()) {
      std::cerr << "Listed 0 items.\n";
      return OkStatus();
    }
    PrintTable({"DATA", "MESSAGE_ID", "ORDERING_KEY", "ATTRIBUTES", "DELIVERY_ATTEMPT", auto_ack ? "ACK_STATUS" : "ACK_ID"},
               rows);
    return OkStatus();
  }));

  // ---- deploy ----
  std::string deploy_file;
  bool dry_run = false;
  auto* deploy = app.add_subcommand("deploy", "Apply a deploy file: print the plan, then apply it");
  deploy->add_option("-f,--file", deploy_file, "The deploy file")->required();
  deploy->add_flag("--dry-run", dry_run, "Only print the plan");
  deploy->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto request, ParseDeployFile(deploy_file, g.project));
    request.dry_run = dry_run;
    Json body = Json::parse(DeployRequestToJson(request).dump());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/ferry/v1/deploy", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
      return OkStatus();
    }
    int changes = 0;
    for (auto const& item : res.value("plan", Json::array())) {
      std::string action = item.value("action", "");
      if (action == "unchanged") continue;
      ++changes;
      std::cout << (action == "create" ? "+ " : action == "delete" ? "- " : "~ ") << action << " "
                << item.value("kind", "") << " " << item.value("name", "") << "\n";
    }
    if (changes == 0) {
      std::cout << "No changes.\n";
    } else if (res.value("applied", false)) {
      std::cout << "Applied " << changes << " change(s).\n";
    } else {
      std::cout << changes << " change(s) planned; nothing applied (--dry-run).\n";
    }
    return OkStatus();
  }));

  // The admin API path of a function or job given by id or full name.
  auto local_path = [&](std::string const& collection, std::string const& id) -> StatusOr<std::string> {
    if (id.rfind("projects/", 0) == 0) return "/ferry/v1/" + id;
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    return "/ferry/v1/projects/" + project + "/locations/local/" + collection + "/" + id;
  };

  // ---- functions ----
  auto function_path = [&](std::string const& id) { return local_path("functions", id); };
  auto* functions = app.add_subcommand("functions", "Manage functions");
  functions->require_subcommand(1);
  auto* flist = functions->add_subcommand("list", "List deployed functions");
  flist->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", "/ferry/v1/projects/" + project + "/functions"));
    Json list = res.value("functions", Json::array());
    if (cli.json_output()) {
      std::cout << list.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    bool cluster = false;
    for (auto const& f : list) {
      auto const& spec = f["spec"];
      std::string trigger = spec.value("event_trigger_type", "");
      if (trigger == "google.pubsub.topic.publish") trigger = "topic " + Short(spec.value("event_trigger_resource", ""));
      // In a cluster, each node's instances: "node=running ...".
      std::string per_node;
      for (auto const& part : f.value("nodes", Json::array())) {
        cluster = true;
        per_node += (per_node.empty() ? "" : " ") + part.value("node", "") + "=" +
                    std::to_string(part.value("instancesRunning", 0));
      }
      rows.push_back({Short(f.value("name", "")), f.value("state", ""), spec.value("runtime", ""), trigger,
                      std::to_string(f.value("instancesRunning", 0)) + "/" + std::to_string(spec.value("max_instances", 0)),
                      per_node});
    }
    std::vector<std::string> header = {"NAME", "STATE", "RUNTIME", "TRIGGER", "INSTANCES"};
    if (cluster) {
      header.push_back("BY NODE");
    } else {
      for (auto& row : rows) row.pop_back();
    }
    PrintTable(header, rows);
    return OkStatus();
  }));
  auto* fdescribe = functions->add_subcommand("describe", "Show a function");
  fdescribe->add_option("FUNCTION", one_id)->required();
  fdescribe->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, function_path(one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path));
    PrintDescribe(cli, res);
    return OkStatus();
  }));
  auto* fdelete = functions->add_subcommand("delete", "Delete a function and its trigger subscription");
  fdelete->add_option("FUNCTION", one_id)->required();
  fdelete->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, function_path(one_id));
    FERRY_RETURN_IF_ERROR(cli.Call("DELETE", path));
    std::cerr << "Deleted function [" << one_id << "].\n";
    return OkStatus();
  }));

  // ---- schedules ----
  auto schedule_path = [&](std::string const& id) { return local_path("jobs", id); };
  auto* schedules = app.add_subcommand("schedules", "Manage schedules (Cloud Scheduler jobs)");
  schedules->require_subcommand(1);
  auto* jlist = schedules->add_subcommand("list", "List schedules");
  jlist->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", "/ferry/v1/projects/" + project + "/schedules"));
    Json list = res.value("schedules", Json::array());
    if (cli.json_output()) {
      std::cout << list.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& s : list) {
      std::string target = s.value("topic", "").empty() ? "function " + s.value("function", "")
                                                         : "topic " + Short(s.value("topic", ""));
      rows.push_back({s.value("id", ""), s.value("schedule", ""), s.value("time_zone", ""), target,
                      s.value("state", ""), s.value("next_fire_time", ""), s.value("last_fired_time", "")});
    }
    PrintTable({"ID", "SCHEDULE", "TIME_ZONE", "TARGET", "STATE", "NEXT_FIRE", "LAST_FIRED"}, rows);
    return OkStatus();
  }));
  auto* jdescribe = schedules->add_subcommand("describe", "Show a schedule");
  jdescribe->add_option("SCHEDULE", one_id)->required();
  jdescribe->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, schedule_path(one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path));
    PrintDescribe(cli, res);
    return OkStatus();
  }));
  for (auto [verb, help, done] : {std::tuple{"run", "Fire a schedule now, outside its ticks", "Ran"},
                                  std::tuple{"pause", "Pause a schedule: its ticks do not fire", "Paused"},
                                  std::tuple{"resume", "Resume a schedule from its next tick", "Resumed"}}) {
    auto* sub = schedules->add_subcommand(verb, help);
    sub->add_option("SCHEDULE", one_id)->required();
    sub->callback(run([&, verb = std::string(verb), done = std::string(done)]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto path, schedule_path(one_id));
      Json empty = Json::object();
      FERRY_ASSIGN_OR_RETURN(auto answer, cli.Call("POST", path + ":" + verb, &empty));
      (void)answer;
      std::cerr << done << " schedule [" << one_id << "].\n";
      return OkStatus();
    }));
  }

  // ---- dead-letter ----
  auto dead_letter_path = [&](std::string const& sub) -> StatusOr<std::string> {
    if (sub.rfind("projects/", 0) == 0) return "/ferry/v1/" + sub + "/deadLetters";
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    return "/ferry/v1/projects/" + project + "/subscriptions/" + sub + "/deadLetters";
  };
  auto* dead = app.add_subcommand("dead-letter", "Messages a subscription dead-lettered: list, redrive, purge");
  dead->require_subcommand(1);
  int dead_limit = 100;
  auto* dlist = dead->add_subcommand("list", "List the messages a subscription dead-lettered, oldest first");
  dlist->add_option("SUBSCRIPTION", one_id, "The subscription that gave up on them (a function's trigger's)")
      ->required();
  dlist->add_option("--limit", dead_limit, "At most this many")->check(CLI::Range(1, 1000))->capture_default_str();
  dlist->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, dead_letter_path(one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path + "?limit=" + std::to_string(dead_limit)));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
      return OkStatus();
    }
    auto cut = [](std::string text, std::size_t n) {
      std::replace(text.begin(), text.end(), '\n', ' ');
      return text.size() <= n ? text : text.substr(0, n) + "...";
    };
    std::vector<std::vector<std::string>> rows;
    for (auto const& m : res.value("messages", Json::array())) {
      rows.push_back({m.value("messageId", ""), m.value("publishTime", ""),
                      std::to_string(m.value("deliveryAttempts", 0)), std::to_string(m.value("redrives", 0)),
                      cut(m.value("lastError", ""), 60), cut(m.value("dataPreview", ""), 40)});
    }
    PrintTable({"MESSAGE_ID", "DEAD_LETTERED", "ATTEMPTS", "REDRIVES", "LAST_ERROR", "DATA"}, rows);
    if (res.contains("nextAfter")) std::cerr << "More follow; list them with --format json and the API's after.\n";
    return OkStatus();
  }));
  std::vector<std::string> dead_ids;
  bool dead_all = false;
  for (auto [verb, help, done] :
       {std::tuple{"redrive", "Send dead-lettered messages back to the subscription that gave up on them", "redriven"},
        std::tuple{"purge", "Drop dead-lettered messages for good", "purged"}}) {
    auto* sub = dead->add_subcommand(verb, help);
    sub->add_option("SUBSCRIPTION", one_id, "The subscription that dead-lettered them")->required();
    sub->add_option("--message-id", dead_ids, "A message's id on the dead-letter subscription (as list shows)");
    sub->add_flag("--all", dead_all, "Every message the subscription dead-lettered");
    sub->callback(run([&, verb = std::string(verb), done = std::string(done)]() -> Status {
      if (dead_all == !dead_ids.empty()) return InvalidArgumentError("give --message-id ID (one or more) or --all");
      FERRY_ASSIGN_OR_RETURN(auto path, dead_letter_path(one_id));
      Json body = dead_all ? Json{{"all", true}} : Json{{"messageIds", dead_ids}};
      FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", path + ":" + verb, &body));
      auto moved = res.value(done, Json::array());
      if (cli.json_output()) {
        std::cout << res.dump(2) << "\n";
      } else {
        std::cout << moved.size() << " message(s) " << done << ".\n";
      }
      if (!dead_all && moved.size() < dead_ids.size()) {
        return NotFoundError(std::to_string(dead_ids.size() - moved.size()) +
                             " of the messages named are not dead letters of " + one_id);
      }
      return OkStatus();
    }));
  }

  // ---- cp ----
  std::string cp_from, cp_to, cp_type;
  auto* cp = app.add_subcommand("cp", "Copy a file into a bucket (gs://BUCKET/OBJECT) or an object out of one");
  cp->add_option("FROM", cp_from, "A local file or gs://BUCKET/OBJECT")->required();
  cp->add_option("TO", cp_to, "gs://BUCKET/OBJECT or a local file")->required();
  cp->add_option("--content-type", cp_type, "The object's content type (default: from its name)");
  cp->callback(run([&]() -> Status {
    auto split = [](std::string const& url) -> StatusOr<std::pair<std::string, std::string>> {
      std::string rest = url.substr(5);
      auto slash = rest.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
        return InvalidArgumentError("expected gs://BUCKET/OBJECT, got \"" + url + "\"");
      }
      return std::pair{rest.substr(0, slash), rest.substr(slash + 1)};
    };
    bool upload = cp_to.rfind("gs://", 0) == 0;
    bool download = cp_from.rfind("gs://", 0) == 0;
    if (upload == download) return InvalidArgumentError("one of FROM and TO must be gs://BUCKET/OBJECT");
    if (upload) {
      FERRY_ASSIGN_OR_RETURN(auto target, split(cp_to));
      std::ifstream in(cp_from, std::ios::binary | std::ios::ate);
      if (!in) return NotFoundError("cannot read " + cp_from);
      auto const total = static_cast<int64_t>(in.tellg());
      in.seekg(0);
      // A resumable upload in chunks, as gcloud does for large files: any size goes, one chunk in memory at a
      // time, and the server's limits answer in its own words.
      Json meta = Json::object();
      if (!cp_type.empty()) meta["contentType"] = cp_type;
      FERRY_ASSIGN_OR_RETURN(auto started, cli.Raw("POST", "/upload/storage/v1/b/" + target.first +
                                                               "/o?uploadType=resumable&name=" + PercentEncode(target.second),
                                                   meta.dump(), "application/json"));
      if (started.status != 200) return UploadFailed(started);
      std::string id = started.Header("x-guploader-uploadid");
      if (id.empty()) return UnavailableError("the server gave no upload id");
      std::string path = "/upload/storage/v1/b/" + target.first + "/o?uploadType=resumable&upload_id=" + id;
      constexpr int64_t kChunk = 8 << 20;
      std::string chunk;
      int64_t sent = 0;
      do {
        chunk.resize(static_cast<std::size_t>(std::min(kChunk, total - sent)));
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        if (!in) return UnavailableError("cannot read " + cp_from);
        std::string range = chunk.empty() ? "bytes */" + std::to_string(total)
                                          : "bytes " + std::to_string(sent) + "-" +
                                                std::to_string(sent + static_cast<int64_t>(chunk.size()) - 1) + "/" +
                                                std::to_string(total);
        FERRY_ASSIGN_OR_RETURN(auto res, cli.Raw("PUT", path, chunk, "application/octet-stream",
                                                 {{"Content-Range", range}}));
        sent += static_cast<int64_t>(chunk.size());
        if (sent < total && res.status != 308) return UploadFailed(res);
        if (sent >= total && res.status != 200) return UploadFailed(res);
      } while (sent < total);
      std::cerr << "Copied " << cp_from << " to " << cp_to << " (" << total << " bytes).\n";
      return OkStatus();
    }
    FERRY_ASSIGN_OR_RETURN(auto source, split(cp_from));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Raw("GET", "/storage/v1/b/" + source.first + "/o/" + PercentEncode(source.second) +
                                                        "?alt=media", "", ""));
    if (res.status != 200) return NotFoundError("no object " + cp_from + " (HTTP " + std::to_string(res.status) + ")");
    std::ofstream out(cp_to, std::ios::binary | std::ios::trunc);
    out << res.body;
    if (!out) return UnavailableError("cannot write " + cp_to);
    return OkStatus();
  }));

  // ---- call ----
  std::string call_data;
  auto* call = app.add_subcommand("call", "Invoke a function once, now (not through its trigger)");
  call->add_option("FUNCTION", one_id)->required();
  call->add_option("--data", call_data, "The event's data (background functions) or the request body (HTTP)");
  call->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, function_path(one_id));
    Json body{{"data", call_data}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", path + ":call", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
    } else {
      std::cout << "executionId: " << res.value("executionId", "") << "\nstatus: " << res.value("status", "") << "\n";
      if (res.contains("result")) std::cout << "result: " << res.value("result", "") << "\n";
      if (res.contains("error")) std::cout << "error: " << res.value("error", "") << "\n";
    }
    if (res.value("status", "") != "ok") return Status(StatusCode::kUnknown, "the execution failed");
    return OkStatus();
  }));

  // ---- logs ----
  int log_limit = 100;
  bool follow = false;
  std::string execution_id;
  auto* logs = app.add_subcommand("logs", "Show a function's logs, oldest first");
  logs->add_option("FUNCTION", one_id)->required();
  logs->add_option("--limit", log_limit, "The newest N lines")->capture_default_str()->check(CLI::Range(1, 10000));
  logs->add_flag("-f,--follow", follow, "Keep printing new lines as they come");
  logs->add_option("--execution-id", execution_id, "Only this execution's lines");
  logs->callback(run([&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, function_path(one_id));
    int64_t after = 0;
    bool first = true;
    while (true) {
      // --limit picks the newest lines at first; after that, every new line is shown.
      std::string target = path + "/logs?limit=" + std::to_string(first ? log_limit : 10000) + "&after=" +
                           std::to_string(after);
      if (!execution_id.empty()) target += "&executionId=" + UrlEncode(execution_id);
      FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", target));
      std::vector<std::vector<std::string>> rows;
      for (auto const& e : res.value("entries", Json::array())) {
        after = std::max<int64_t>(after, e.value("seq", int64_t{0}));
        if (cli.json_output()) {
          std::cout << e.dump() << "\n";
          continue;
        }
        std::string severity = e.value("severity", "");
        std::string time = e.value("time", "");
        std::replace(time.begin(), time.end(), 'T', ' ');
        if (!time.empty() && time.back() == 'Z') time.pop_back();
        rows.push_back({severity.empty() ? "" : severity.substr(0, 1), Short(one_id), e.value("executionId", ""),
                        time, e.value("message", "")});
      }
      // As `gcloud functions logs read` prints them; followed lines come unaligned, as they arrive.
      if (first && !cli.json_output()) {
        PrintTable({"LEVEL", "NAME", "EXECUTION_ID", "TIME_UTC", "LOG"}, rows);
      } else {
        for (auto const& r : rows) std::cout << r[0] << "  " << r[1] << "  " << r[2] << "  " << r[3] << "  " << r[4] << "\n";
      }
      first = false;
      std::cout.flush();
      if (!follow) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return OkStatus();
  }));

  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "ferry: %s (see --help)\n", e.what());
    return 2;
  }
  return rc;
}

}  // namespace
}  // namespace ferry

int main(int argc, char** argv) { return ferry::Main(argc, argv); }
