// Load generator for the functions benchmark (bench/functions_bench.sh). Prints one JSON line per mode.
//
//   functions_load pipeline --endpoint URL --project P --topic T --function NAME --messages 20000
//       publishes N messages as fast as it can and waits until the function has run them all: executions/s
//   functions_load latency --endpoint URL --project P --topic T --function NAME --rate 200 --seconds 10
//       publishes at a steady rate with the send time in an attribute; the function logs its start latency
//   functions_load direct --endpoint URL --requests 20000 --connections 4
//       POSTs a Pub/Sub background event straight to a Functions Framework server, keep-alive: requests/s
//   functions_load http --endpoint URL --path /functions/hello --requests 20000 --connections 4
//       GETs an HTTP function, keep-alive: requests/s and each request's latency (p50, p99); with --trace FILE,
//       each request's start and latency, to see when the slow ones come
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "common/base64.h"
#include "common/split.h"

namespace {

// A bearer token for a Ferry that wants one (FERRY_TOKEN), as the ferry CLI takes it.
std::string TokenFromEnvironment() {
  char const* token = std::getenv("FERRY_TOKEN");
  return token != nullptr ? token : "";
}

using Json = nlohmann::json;
using Steady = std::chrono::steady_clock;

struct Options {
  std::string endpoint;
  std::string project = "bench";
  std::string topic = "bench";
  std::string function = "trivial";
  int messages = 20'000;
  int rate = 200;
  int seconds = 10;
  int requests = 20'000;
  int connections = 4;
  std::string path = "/";
  std::string trace;  // http: each request's start (s) and latency (ms), a line each
};

[[noreturn]] void Die(std::string const& what) {
  std::fprintf(stderr, "functions_load: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<ferry::HttpClient> Connect(std::string const& endpoint) {
  auto c = ferry::HttpClient::Make(endpoint, TokenFromEnvironment());
  if (!c.ok()) Die(c.status().message());
  return *std::move(c);
}

std::string Send(ferry::HttpClient& c, std::string const& method, std::string const& path, std::string const& body) {
  auto res = c.Send(method, path, body);
  if (!res.ok()) Die(method + " " + path + ": " + res.status().message());
  if (res->status < 200 || res->status >= 300) Die(method + " " + path + " -> " + std::to_string(res->status) + " " + res->body);
  return res->body;
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// --endpoint may name several nodes of a cluster, comma-separated.
std::vector<std::string> Endpoints(Options const& o) {
  std::vector<std::string> out;
  for (auto e : ferry::Split(o.endpoint, ',')) {
    if (!e.empty()) out.emplace_back(e);
  }
  return out;
}

// The function's successful executions so far, from /metrics (of every node: each counts its own, and labels it
// with its name).
int64_t Executions(std::vector<std::unique_ptr<ferry::HttpClient>>& nodes, Options const& o) {
  std::string const function = "function=\"projects/" + o.project + "/locations/local/functions/" + o.function + "\"";
  int64_t total = 0;
  for (auto& c : nodes) {
    std::stringstream text(Send(*c, "GET", "/metrics", ""));
    for (std::string line; std::getline(text, line);) {
      if (line.rfind("ferry_function_executions_total{", 0) != 0 || line.find(function) == std::string::npos ||
          line.find("status=\"ok\"") == std::string::npos) {
        continue;
      }
      total += std::stoll(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

std::vector<std::unique_ptr<ferry::HttpClient>> ConnectAll(Options const& o) {
  std::vector<std::unique_ptr<ferry::HttpClient>> out;
  for (auto const& e : Endpoints(o)) out.push_back(Connect(e));
  return out;
}

void Pipeline(Options const& o) {
  auto nodes = ConnectAll(o);
  int64_t before = Executions(nodes, o);
  std::string path = "/v1/projects/" + o.project + "/topics/" + o.topic + ":publish";
  constexpr int kBatch = 500;
  std::string message = R"({"data":")" + ferry::Base64Encode("{}") + R"("})";
  auto start = Steady::now();
  for (int sent = 0; sent < o.messages; sent += kBatch) {
    int n = std::min(kBatch, o.messages - sent);
    std::string body = R"({"messages":[)";
    for (int i = 0; i < n; ++i) body += (i ? "," : "") + message;
    body += "]}";
    Send(*nodes[static_cast<std::size_t>(sent / kBatch) % nodes.size()], "POST", path, body);  // through each node
  }
  auto published = Steady::now();
  // /metrics scans every backlog: polled often, it would slow the server it measures.
  while (Executions(nodes, o) - before < o.messages) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto done = Steady::now();
  std::printf("%s\n", Json{{"messages", o.messages},
                           {"publish_s", Seconds(published - start)},
                           {"total_s", Seconds(done - start)},
                           {"executions_per_s", o.messages / Seconds(done - start)}}
                          .dump()
                          .c_str());
}

void Latency(Options const& o) {
  auto nodes = ConnectAll(o);
  auto& c = nodes[0];
  std::string logs = "/ferry/v1/projects/" + o.project + "/functions/" + o.function + "/logs";
  int64_t after = 0;  // only lines logged from now on count
  {
    Json last = Json::parse(Send(*c, "GET", logs + "?limit=1", ""));
    for (auto const& e : last["entries"]) after = e["seq"].get<int64_t>();
  }
  std::string path = "/v1/projects/" + o.project + "/topics/" + o.topic + ":publish";
  int total = o.rate * o.seconds;
  // The function's latency lines, read as they come (a page holds the newest lines after `after`, so reading
  // often never misses any).
  std::vector<double> ms;
  std::atomic<bool> published{false};
  std::thread reader([&] {
    auto rc = Connect(Endpoints(o).back());  // the logs of every node, through any
    int64_t const first = after;
    int64_t newest = after;
    std::unordered_set<int64_t> seen;
    auto give_up = Steady::time_point::max();
    while (static_cast<int>(ms.size()) < total && Steady::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (published && give_up == Steady::time_point::max()) give_up = Steady::now() + std::chrono::seconds(20);
      // Several nodes write logs: a line numbered below the newest read may still commit, so each read starts
      // reread_lines back and skips the lines already seen. One node's log writer commits its lines in the order
      // they are numbered, so nothing is re-read: a page of 2,000 lines costs the server about 7 ms of CPU, and
      // reading it every 200 ms put the bench's own spikes into the latency it measures (p99 4-5 ms against 1.5).
      int64_t const reread_lines = nodes.size() > 1 ? 2000 : 0;
      int64_t from = std::max(first, newest - reread_lines);
      Json page = Json::parse(Send(*rc, "GET", logs + "?limit=10000&after=" + std::to_string(from), ""));
      for (auto const& e : page["entries"]) {
        int64_t seq = e["seq"].get<int64_t>();
        newest = std::max(newest, seq);
        if (!seen.insert(seq).second) continue;
        std::string m = e["message"].get<std::string>();
        if (m.rfind("latency_us=", 0) == 0) ms.push_back(std::stod(m.substr(11)) / 1000.0);
      }
    }
  });
  auto interval = std::chrono::nanoseconds(1'000'000'000LL / o.rate);
  auto next = Steady::now();
  for (int i = 0; i < total; ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    auto sent_us = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
    Json body{{"messages", Json::array({{{"data", ferry::Base64Encode("{}")},
                                         {"attributes", {{"sent_us", std::to_string(sent_us)}}}}})}};
    Send(*nodes[static_cast<std::size_t>(i) % nodes.size()], "POST", path, body.dump());
  }
  published = true;
  reader.join();
  if (ms.empty()) Die("no latencies logged");
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
  std::printf("%s\n", Json{{"messages", ms.size()}, {"rate", o.rate}, {"p50_ms", pct(0.50)}, {"p99_ms", pct(0.99)},
                           {"max_ms", ms.back()}}
                          .dump()
                          .c_str());
}

void Direct(Options const& o) {
  Json event{{"context",
              {{"eventId", "1"},
               {"timestamp", "2026-11-28T00:00:00.000Z"},
               {"eventType", "google.pubsub.topic.publish"},
               {"resource", {{"service", "pubsub.googleapis.com"}, {"name", "projects/bench/topics/bench"},
                             {"type", "type.googleapis.com/google.pubsub.v1.PubsubMessage"}}}}},
             {"data", {{"@type", "type.googleapis.com/google.pubsub.v1.PubsubMessage"},
                       {"attributes", Json::object()},
                       {"data", ferry::Base64Encode("{}")}}}};
  std::string body = event.dump();
  std::atomic<int> next{0};
  auto start = Steady::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.connections; ++t) {
    threads.emplace_back([&] {
      auto c = Connect(o.endpoint);
      while (next.fetch_add(1) < o.requests) Send(*c, "POST", "/", body);
    });
  }
  for (auto& t : threads) t.join();
  double s = Seconds(Steady::now() - start);
  std::printf("%s\n", Json{{"requests", o.requests}, {"seconds", s}, {"requests_per_s", o.requests / s}}.dump().c_str());
}

void Http(Options const& o) {
  std::atomic<int> next{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(o.connections));
  std::vector<std::vector<double>> sent_at(static_cast<std::size_t>(o.connections));
  auto start = Steady::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.connections; ++t) {
    threads.emplace_back([&, t] {
      auto c = Connect(o.endpoint);
      auto& mine = latencies[static_cast<std::size_t>(t)];
      while (next.fetch_add(1) < o.requests) {
        auto sent = Steady::now();
        Send(*c, "GET", o.path, "");
        mine.push_back(Seconds(Steady::now() - sent) * 1e3);
        if (!o.trace.empty()) sent_at[static_cast<std::size_t>(t)].push_back(Seconds(sent - start));
      }
    });
  }
  for (auto& t : threads) t.join();
  double s = Seconds(Steady::now() - start);
  if (!o.trace.empty()) {
    FILE* out = std::fopen(o.trace.c_str(), "w");
    if (out == nullptr) Die("cannot write " + o.trace);
    for (std::size_t c = 0; c < sent_at.size(); ++c) {
      for (std::size_t i = 0; i < sent_at[c].size(); ++i) {
        std::fprintf(out, "%.6f %.4f\n", sent_at[c][i], latencies[c][i]);
      }
    }
    std::fclose(out);
  }
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[static_cast<std::size_t>(p * static_cast<double>(all.size() - 1))]; };
  std::printf("%s\n", Json{{"requests", o.requests}, {"seconds", s}, {"requests_per_s", o.requests / s},
                           {"p50_ms", pct(0.50)}, {"p99_ms", pct(0.99)}}.dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generator for the functions benchmark"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--endpoint", o.endpoint)->required();
  app.add_option("--project", o.project);
  app.add_option("--topic", o.topic);
  app.add_option("--function", o.function);
  app.fallthrough();
  auto* pipeline = app.add_subcommand("pipeline");
  pipeline->add_option("--messages", o.messages);
  auto* latency = app.add_subcommand("latency");
  latency->add_option("--rate", o.rate);
  latency->add_option("--seconds", o.seconds);
  auto* direct = app.add_subcommand("direct");
  direct->add_option("--requests", o.requests);
  direct->add_option("--connections", o.connections);
  auto* http = app.add_subcommand("http");
  http->add_option("--path", o.path);
  http->add_option("--requests", o.requests);
  http->add_option("--connections", o.connections);
  http->add_option("--trace", o.trace, "write each request's start (s) and latency (ms) to this file");
  CLI11_PARSE(app, argc, argv);
  if (pipeline->parsed()) Pipeline(o);
  if (latency->parsed()) Latency(o);
  if (direct->parsed()) Direct(o);
  if (http->parsed()) Http(o);
  return 0;
}
