// Load generator for any Pub/Sub REST v1 server (Ferry or Google's emulator): publishes N messages in batches
// from several connections, then pulls and acknowledges them all. Prints one JSON line with both rates.
//
//   ferry_pubsub_rest_bench --endpoint http://127.0.0.1:8085 --project bench --messages 100000
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

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
using Clock = std::chrono::steady_clock;

struct Options {
  std::string endpoint = "http://127.0.0.1:8085";
  std::string project = "bench";
  std::string topic = "bench-topic";
  std::string subscription = "bench-sub";
  int messages = 100'000;
  int batch = 1000;
  int size = 100;
  int publishers = 4;
  int pullers = 4;
};

// --endpoint may name several nodes of a cluster, comma-separated: connection i goes to node i mod n.
std::vector<std::string> Endpoints(Options const& o) {
  std::vector<std::string> out;
  for (auto e : ferry::Split(o.endpoint, ',')) {
    if (!e.empty()) out.emplace_back(e);
  }
  return out;
}

std::unique_ptr<ferry::HttpClient> Connect(Options const& o, int i = 0) {
  auto endpoints = Endpoints(o);
  auto c = ferry::HttpClient::Make(endpoints[static_cast<std::size_t>(i) % endpoints.size()], TokenFromEnvironment());
  if (!c.ok()) {
    std::fprintf(stderr, "bench: %s\n", c.status().message().c_str());
    std::exit(1);
  }
  return *std::move(c);
}

Json Call(ferry::HttpClient& c, std::string const& method, std::string const& path, Json const& body,
          bool exists_ok = false) {
  auto res = c.Send(method, path, body.is_null() ? "" : body.dump());
  if (!res.ok()) {
    std::fprintf(stderr, "bench: %s %s: %s\n", method.c_str(), path.c_str(), res.status().message().c_str());
    std::exit(1);
  }
  if (exists_ok && res->status == 409) return Json::object();
  if (res->status != 200) {
    std::fprintf(stderr, "bench: %s %s -> %d %s\n", method.c_str(), path.c_str(), res->status, res->body.c_str());
    std::exit(1);
  }
  return res->body.empty() ? Json::object() : Json::parse(res->body);
}

// The ack ids of a pull response, found by scanning rather than parsing: the load generator must stay cheap next
// to the server it measures (a full JSON parse of every message cost it more CPU than the server spent).
std::vector<std::string> AckIds(std::string const& body) {
  std::vector<std::string> ids;
  constexpr std::string_view kKey = "\"ackId\"";
  for (auto pos = body.find(kKey); pos != std::string::npos; pos = body.find(kKey, pos)) {
    pos = body.find('"', body.find(':', pos + kKey.size()));
    auto end = body.find('"', pos + 1);
    ids.push_back(body.substr(pos + 1, end - pos - 1));
    pos = end;
  }
  return ids;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Pub/Sub REST throughput benchmark"};
  app.add_option("--endpoint", o.endpoint);
  app.add_option("--project", o.project);
  app.add_option("--messages", o.messages);
  app.add_option("--batch", o.batch);
  app.add_option("--size", o.size);
  app.add_option("--publishers", o.publishers);
  app.add_option("--pullers", o.pullers);
  app.add_option("--topic", o.topic);
  app.add_option("--subscription", o.subscription);
  CLI11_PARSE(app, argc, argv);

  std::string topic = "projects/" + o.project + "/topics/" + o.topic;
  std::string sub = "projects/" + o.project + "/subscriptions/" + o.subscription;
  {
    auto c = Connect(o);
    Call(*c, "PUT", "/v1/" + topic, Json::object(), true);
    Call(*c, "PUT", "/v1/" + sub, Json{{"topic", topic}, {"ackDeadlineSeconds", 600}}, true);
  }

  // The request bodies are built before timing: the client must not be the bottleneck.
  std::mt19937 rng(42);
  std::string payload(static_cast<std::size_t>(o.size), 'x');
  int batches = (o.messages + o.batch - 1) / o.batch;
  std::vector<std::string> bodies;
  for (int b = 0; b < batches; ++b) {
    Json msgs = Json::array();
    for (int i = 0; i < o.batch && b * o.batch + i < o.messages; ++i) {
      for (auto& ch : payload) ch = static_cast<char>('a' + rng() % 26);
      msgs.push_back({{"data", ferry::Base64Encode(payload)}});
    }
    bodies.push_back(Json{{"messages", msgs}}.dump());
  }

  std::atomic<int> next_batch{0};
  auto publish_start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.publishers; ++t) {
    threads.emplace_back([&, t] {
      auto c = Connect(o, t);
      for (int b; (b = next_batch++) < batches;) {
        auto res = c->Send("POST", "/v1/" + topic + ":publish", bodies[static_cast<std::size_t>(b)]);
        if (!res.ok() || res->status != 200) {
          std::fprintf(stderr, "bench: publish failed\n");
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double publish_s = Seconds(Clock::now() - publish_start);
  threads.clear();

  std::atomic<int> received{0};
  auto pull_start = Clock::now();
  auto deadline = pull_start + std::chrono::minutes(10);
  for (int t = 0; t < o.pullers; ++t) {
    threads.emplace_back([&, t] {
      auto c = Connect(o, t + 1);  // a message published through one node is pulled through another
      Json pull{{"maxMessages", o.batch}, {"returnImmediately", true}};
      std::string pull_body = pull.dump();
      while (received.load() < o.messages && Clock::now() < deadline) {
        auto res = c->Send("POST", "/v1/" + sub + ":pull", pull_body);
        if (!res.ok() || res->status != 200) {
          std::fprintf(stderr, "bench: pull failed\n");
          std::exit(1);
        }
        auto ids = AckIds(res->body);
        if (ids.empty()) continue;
        std::string ack = "{\"ackIds\":[";
        for (std::size_t i = 0; i < ids.size(); ++i) ack += (i ? ",\"" : "\"") + ids[i] + "\"";
        ack += "]}";
        auto acked = c->Send("POST", "/v1/" + sub + ":acknowledge", ack);
        if (!acked.ok() || acked->status != 200) {
          std::fprintf(stderr, "bench: acknowledge failed\n");
          std::exit(1);
        }
        received += static_cast<int>(ids.size());
      }
    });
  }
  for (auto& t : threads) t.join();
  double pull_s = Seconds(Clock::now() - pull_start);

  Json out{{"endpoint", o.endpoint},
           {"messages", o.messages},
           {"received", received.load()},
           {"publish_seconds", publish_s},
           {"publish_msgs_per_s", o.messages / publish_s},
           {"pull_ack_seconds", pull_s},
           {"pull_ack_msgs_per_s", received.load() / pull_s}};
  std::printf("%s\n", out.dump().c_str());
  return received.load() >= o.messages ? 0 : 1;
}
