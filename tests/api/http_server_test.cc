#include "api/http_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace ferry {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The server's connection deadlines, seen from a real client socket: what a slow or silent client gets.
class HttpServerDeadlineTest : public ::testing::Test {
 protected:
  void Start(milliseconds header_timeout, milliseconds read_timeout) {
    HttpServerOptions options;
    options.port = 0;
    options.header_timeout = header_timeout;
    options.read_timeout = read_timeout;
    auto server = HttpServer::Start(options, [](HttpRequest const&) {
      return HttpResponse{.status = 200, .content_type = "text/plain", .body = "ok"};
    });
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = *std::move(server);
  }

  // A connected socket whose reads give up after 5 s.
  int Connect() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval five{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }

  static bool Send(int fd, std::string const& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }

  // Reads until the answer's body ("ok") has come: true, or the connection closed or timed out: false.
  static bool ReadAnswer(int fd) {
    std::string got;
    char buf[512];
    while (got.find("\r\n\r\nok") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got.rfind("HTTP/1.1 200", 0) == 0;
  }

  // How long until the server closes the connection (recv sees the end, or a reset); -1 ms if it stayed open 5 s.
  static milliseconds TimeUntilClosed(int fd, Clock::time_point since) {
    char buf[512];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
      if (n < 0 && errno != EINTR) return milliseconds(-1);
    }
    return std::chrono::duration_cast<milliseconds>(Clock::now() - since);
  }

  // Expects the server to close `fd` between `at_least` and `before` milliseconds after `since`, then closes it.
  static void ExpectClosedBetween(int fd, Clock::time_point since, int at_least, int before) {
    auto closed = TimeUntilClosed(fd, since);
    EXPECT_GE(closed.count(), at_least);
    EXPECT_LT(closed.count(), before);
    ::close(fd);
  }

  static constexpr char kRequest[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerDeadlineTest, ASilentConnectionIsClosedAtTheHeaderTimeout) {
  Start(milliseconds(300), milliseconds(5000));
  ExpectClosedBetween(Connect(), Clock::now(), 250, 3000);
}

TEST_F(HttpServerDeadlineTest, HeadersThatTrickleInAreCutOffAtTheHeaderTimeout) {
  Start(milliseconds(400), milliseconds(5000));
  int fd = Connect();
  auto const start = Clock::now();
  ASSERT_TRUE(Send(fd, "GET / HTTP/1.1\r\n"));
  // A byte now and then does not buy more time (slowloris).
  bool cut_off = false;
  for (int i = 0; i < 40 && !cut_off; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    cut_off = !Send(fd, "X-Slow: 1\r\n");
  }
  auto closed = cut_off ? std::chrono::duration_cast<milliseconds>(Clock::now() - start) : TimeUntilClosed(fd, start);
  EXPECT_GE(closed.count(), 350);
  EXPECT_LT(closed.count(), 3000);
  ::close(fd);
}

TEST_F(HttpServerDeadlineTest, AKeepAliveConnectionLivesWhileUsedAndClosesWhenIdle) {
  Start(milliseconds(400), milliseconds(400));
  int fd = Connect();
  // Requests every 150 ms for 1.5 s, well past both timeouts: each moves the deadline.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Send(fd, kRequest)) << "request " << i;
    ASSERT_TRUE(ReadAnswer(fd)) << "request " << i;
    std::this_thread::sleep_for(milliseconds(150));
  }
  ExpectClosedBetween(fd, Clock::now(), 150, 3000);  // 400 ms from the last answer, 150 of them slept above
}

TEST_F(HttpServerDeadlineTest, ABodyThatNeverComesIsCutOffAtTheReadTimeout) {
  Start(milliseconds(5000), milliseconds(400));
  int fd = Connect();
  auto const start = Clock::now();
  ASSERT_TRUE(Send(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"));
  ExpectClosedBetween(fd, start, 350, 3000);
}

TEST_F(HttpServerDeadlineTest, EachConnectionKeepsItsOwnDeadline) {
  Start(milliseconds(300), milliseconds(1500));
  int busy = Connect();
  ASSERT_TRUE(Send(busy, kRequest));
  ASSERT_TRUE(ReadAnswer(busy));  // now on the 1.5 s read timeout
  int silent = Connect();         // on the 300 ms header timeout: due first, though it came later
  ExpectClosedBetween(silent, Clock::now(), 250, 1200);
  // The busy connection is still open and answers.
  ASSERT_TRUE(Send(busy, kRequest));
  EXPECT_TRUE(ReadAnswer(busy));
  ::close(busy);
}

}  // namespace
}  // namespace ferry
