// The Sentry reporter's parts: the DSN as Sentry documents it, the envelope, and the bounded one-shot request it
// goes out with (against a real socket that answers, and one that never does).
#include "control/sentry.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "common/split.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

TEST(SentryDsnTest, ParsesSentrysShapes) {
  auto d = ParseSentryDsn("https://abc123@o1.ingest.sentry.io/4505");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->public_key, "abc123");
  EXPECT_EQ(d->Endpoint(), "https://o1.ingest.sentry.io:443");
  EXPECT_EQ(d->EnvelopePath(), "/api/4505/envelope/");
  EXPECT_EQ(d->AuthHeader(), "Sentry sentry_version=7, sentry_key=abc123, sentry_client=ferry/0.1.0");

  d = ParseSentryDsn("http://key:legacysecret@127.0.0.1:9000/sentry/7");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->public_key, "key");  // the legacy secret is not sent
  EXPECT_EQ(d->Endpoint(), "http://127.0.0.1:9000");
  EXPECT_EQ(d->EnvelopePath(), "/sentry/api/7/envelope/");

  d = ParseSentryDsn("http://k@[::1]:9000/3");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->host, "[::1]");
}

TEST(SentryDsnTest, RefusesWhatIsNotADsn) {
  for (char const* bad : {"", "sentry", "ftp://k@h/1", "http://h/1", "http://k@h/abc", "http://k@h:99999/1",
                          "http://k@h:0/1", "http://k@h", "http://k@/1", "http://k@h/1?x", "http://k e@h/1",
                          "http://k@h/a b/1", "http://k@h:/1"}) {
    auto d = ParseSentryDsn(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(d.status().message().find("sentry DSN must be"), std::string::npos) << d.status().message();
    }
  }
}

TEST(SentryEnvelopeTest, IsAHeaderAnItemHeaderAndTheEvent) {
  auto dsn = ParseSentryDsn("http://k@127.0.0.1:1/42");
  ASSERT_TRUE(dsn.ok());
  SentryFailure f;
  f.row = {"exec-1", "projects/p/locations/local/functions/bar", "pubsub", "msg-7", 3, "timeout",
           1'700'000'000'000, 2001, "did not answer within 2000 ms"};
  f.release = "bar-0123456789ab";
  f.server_name = "node-a";
  f.lines = {{1, 1'700'000'000'100, f.row.function, "exec-1", "stdout", "INFO", "working on \"order\"\n"},
             {2, 1'700'000'002'001, f.row.function, "exec-1", "ferry", "ERROR", "did not answer"}};
  std::string envelope = SentryEnvelope(*dsn, f, "0123456789abcdef0123456789abcdef", 1'700'000'003'000);
  auto lines = Split(envelope, '\n');
  ASSERT_EQ(lines.size(), 4u);  // three lines, each ended by a newline
  EXPECT_EQ(lines[3], "");
  auto header = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(header["event_id"], "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(header["dsn"], "http://k@127.0.0.1:1/42");
  EXPECT_EQ(header["sent_at"], "2023-11-14T22:13:23.000Z");
  auto item = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(item["type"], "event");
  EXPECT_EQ(item["length"], lines[2].size());
  auto event = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(event["event_id"], header["event_id"]);
  EXPECT_EQ(event["level"], "fatal");
  EXPECT_EQ(event["release"], "bar-0123456789ab");
  EXPECT_EQ(event["server_name"], "node-a");
  EXPECT_EQ(event["transaction"], "bar");
  EXPECT_EQ(event["exception"]["values"][0]["type"], "FunctionTimeout");
  EXPECT_EQ(event["exception"]["values"][0]["value"], "did not answer within 2000 ms");
  EXPECT_EQ(event["tags"]["execution_id"], "exec-1");
  EXPECT_EQ(event["tags"]["attempt"], "3");
  EXPECT_EQ(event["tags"]["trigger"], "pubsub");
  EXPECT_EQ(event["tags"]["function"], "bar");
  EXPECT_EQ(event["extra"]["message_id"], "msg-7");
  ASSERT_EQ(event["breadcrumbs"]["values"].size(), 2u);
  EXPECT_EQ(event["breadcrumbs"]["values"][0]["message"], "working on \"order\"\n");
  EXPECT_EQ(event["breadcrumbs"]["values"][1]["level"], "error");
}

// A loopback listener: answers each connection with `answer` after reading a request, or never answers.
class Listener {
 public:
  explicit Listener(bool answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, answer] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      // The request: its head, then Content-Length bytes of body.
      std::string got;
      char buf[65536];
      for (;;) {
        auto head_end = got.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          auto cl = got.find("Content-Length: ");
          std::size_t length = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
          if (got.size() >= head_end + 4 + length) break;
        }
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      {
        std::lock_guard lock(mu_);
        request_ = got;
      }
      if (answer) {
        std::string res = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        (void)::write(c, res.data(), res.size());
      } else {
        char more[1];
        (void)::read(c, more, 1);  // until the client gives up
      }
      ::close(c);
    });
  }
  ~Listener() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  [[nodiscard]] std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string request() {
    std::lock_guard lock(mu_);
    return request_;
  }

 private:
  std::mutex mu_;
  std::string request_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// The reporter end to end on its own thread: a failure reported, its lines read from a real execution log, the
// envelope posted to the DSN's endpoint with Sentry's auth header, and counted.
TEST(SentryReporterTest, PostsTheEnvelopeWithTheExecutionsLinesAndCountsIt) {
  Listener listener(true);
  testing::TempDir dir;
  auto log = MakeSqliteExecutionLog({.data_dir = dir.path()});
  ASSERT_TRUE(log.ok()) << log.status().message();
  std::string const fn = "projects/p/locations/local/functions/bar";
  (*log)->Append({0, 1000, fn, "exec-9", "stderr", "ERROR", "Traceback: the order table is locked"});
  auto dsn = ParseSentryDsn("http://pubkey@127.0.0.1:" + listener.endpoint().substr(17) + "/42");
  ASSERT_TRUE(dsn.ok()) << dsn.status().message();
  {
    SentryReporter reporter(**log, "node-a");
    reporter.Report(*dsn, {"exec-9", fn, "pubsub", "m1", 2, "crash", 1000, 5, "the instance crashed"}, "bar-abc");
    for (int i = 0; i < 500 && reporter.RenderMetrics().find("result=\"sent\"} 1") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(reporter.RenderMetrics().find("ferry_sentry_reports_total{result=\"sent\"} 1"), std::string::npos)
        << reporter.RenderMetrics();
  }
  std::string request = listener.request();
  EXPECT_EQ(request.rfind("POST /api/42/envelope/ HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("X-Sentry-Auth: Sentry sentry_version=7, sentry_key=pubkey, sentry_client=ferry/"),
            std::string::npos) << request;
  EXPECT_NE(request.find("Content-Type: application/x-sentry-envelope"), std::string::npos);
  EXPECT_NE(request.find("\"type\":\"FunctionCrash\""), std::string::npos);
  EXPECT_NE(request.find("Traceback: the order table is locked"), std::string::npos) << "the execution's line";
}

TEST(SendOnceTest, SendsTheRequestAndReadsTheAnswer) {
  Listener listener(true);
  auto res = SendOnce(listener.endpoint(), "POST", "/api/42/envelope/", "hello", "application/x-sentry-envelope",
                      {{"X-Sentry-Auth", "Sentry sentry_key=k"}}, std::chrono::seconds(5));
  ASSERT_TRUE(res.ok()) << res.status().message();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "{}");
}

TEST(SendOnceTest, GivesUpAtItsDeadlineWhenTheServerNeverAnswers) {
  Listener listener(false);
  auto start = std::chrono::steady_clock::now();
  auto res = SendOnce(listener.endpoint(), "POST", "/", "x", "text/plain", {}, std::chrono::milliseconds(300));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kDeadlineExceeded) << res.status().message();
  EXPECT_LT(took, std::chrono::seconds(5));  // bounded (generously: this is not a timing assertion)
}

TEST(SendOnceTest, AnUnreachableServerIsUnavailable) {
  int port;
  {
    Listener closed(true);  // a port that was just free, then closed
    port = std::stoi(closed.endpoint().substr(17));
    (void)SendOnce(closed.endpoint(), "GET", "/", "", "", {}, std::chrono::seconds(1));
  }
  auto res = SendOnce("http://127.0.0.1:" + std::to_string(port), "GET", "/", "", "", {}, std::chrono::seconds(2));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kUnavailable) << res.status().message();
}

}  // namespace
}  // namespace ferry
