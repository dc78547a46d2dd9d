#include "push/push_delivery.h"

#include <algorithm>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "common/clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/thread_sleeps.h"

namespace ferry {
namespace {

namespace http = boost::beast::http;
using boost::asio::ip::tcp;
using ::ferry::testing::IsOk;
using ::ferry::testing::SleepsOfThreads;
using ::std::chrono::milliseconds;

// A push endpoint on loopback. By path: /ok answers 200; /fail-once answers 500 to its first request and 200
// after; /slow holds each request until Release(). It records the path of every request, in order.
class Receiver {
 public:
  Receiver() : acceptor_(io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~Receiver() {
    Release();
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    tcp::socket wake(io_);  // ends the blocking accept
    boost::system::error_code ec;
    wake.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
    for (auto& t : handlers_) t.join();
  }

  std::string Url(std::string const& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  // Waits (at most 10 s) until `path` has had `n` requests; returns whether it has.
  bool WaitFor(std::string const& path, int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return CountLocked(path) >= n; });
  }
  int Count(std::string const& path) {
    std::lock_guard lock(mu_);
    return CountLocked(path);
  }

 private:
  int CountLocked(std::string const& path) const {
    return static_cast<int>(std::count(seen_.begin(), seen_.end(), path));
  }

  void AcceptLoop() {
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (!ec) handlers_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  void Serve(tcp::socket socket) {
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    boost::system::error_code ec;
    http::read(socket, buffer, request, ec);
    if (ec) return;
    std::string path(request.target());
    http::status status = http::status::ok;
    {
      std::unique_lock lock(mu_);
      if (path == "/fail-once" && CountLocked(path) == 0) status = http::status::internal_server_error;
      seen_.push_back(path);
      cv_.notify_all();
      if (path == "/slow") cv_.wait(lock, [&] { return released_; });
    }
    http::response<http::string_body> response(status, 11);
    response.keep_alive(false);
    response.prepare_payload();
    http::write(socket, response, ec);
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> seen_;        // GUARDED_BY(mu_)
  bool released_ = false;                // GUARDED_BY(mu_)
  bool stopping_ = false;                // GUARDED_BY(mu_)
  std::vector<std::thread> handlers_;    // GUARDED_BY(mu_)
};

class PushDeliveryTest : public ::testing::Test {
 protected:
  PushDeliveryTest() {
    auto store = MakeSqliteStore({.data_dir = dir_.path()});
    EXPECT_THAT(store, IsOk());
    store_ = *std::move(store);
    broker_ = std::make_unique<Broker>(*store_, clock_, BrokerOptions{.pull_wait = milliseconds(0)});
    auto policy = PushPolicy::Make({"127.0.0.1"});
    EXPECT_THAT(policy, IsOk());
    policy_ = *std::move(policy);
  }
  ~PushDeliveryTest() override {
    if (push_) push_->Stop();
  }

  void Start(int workers, PushOptions options = {}) {
    options.rescan = milliseconds(20);
    options.min_backoff = milliseconds(20);
    options.workers = workers;
    push_ = std::make_unique<PushDelivery>(*broker_, *policy_, options);
    push_->Start();
  }

  // A topic and a push subscription of it to `path` on the receiver, both named push-`name`.
  void CreatePushSub(std::string const& name, std::string const& path) {
    ASSERT_THAT(broker_->CreateTopic({.name = "projects/p/topics/push-" + name}), IsOk());
    Subscription sub;
    sub.name = "projects/p/subscriptions/push-" + name;
    sub.topic = "projects/p/topics/push-" + name;
    sub.push_config.push_endpoint = receiver_.Url(path);
    ASSERT_THAT(broker_->CreateSubscription(sub), IsOk());
  }

  void Publish(std::string const& name) {
    ASSERT_THAT(broker_->Publish("projects/p/topics/push-" + name, {PubsubMessage{.data = "{}"}}), IsOk());
  }

  testing::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<PushPolicy> policy_;
  Receiver receiver_;
  std::unique_ptr<PushDelivery> push_;
};

TEST_F(PushDeliveryTest, DeliversAMessageAndAcksIt) {
  CreatePushSub("a", "/ok");
  Start(2);
  Publish("a");
  ASSERT_TRUE(receiver_.WaitFor("/ok", 1));
  push_->Stop();
  // Acked: nothing left to pull.
  auto left = broker_->Pull("projects/p/subscriptions/push-a", {.max_messages = 10});
  ASSERT_THAT(left, IsOk());
  EXPECT_TRUE(left->empty());
}

TEST_F(PushDeliveryTest, ASubscriptionCreatedAfterStartIsServed) {
  Start(2);
  CreatePushSub("late", "/ok");
  Publish("late");
  EXPECT_TRUE(receiver_.WaitFor("/ok", 1));
}

TEST_F(PushDeliveryTest, AFailedPushIsRetriedAfterItsBackoffWithoutAnotherPublish) {
  CreatePushSub("f", "/fail-once");
  Start(2);
  Publish("f");
  EXPECT_TRUE(receiver_.WaitFor("/fail-once", 2));
}

// Workers held by slow endpoints do not hold up another subscription's retry while a worker is free.
TEST_F(PushDeliveryTest, ARetryIsServedWhileOtherWorkersAreBusy) {
  CreatePushSub("slow1", "/slow");
  CreatePushSub("slow2", "/slow");
  CreatePushSub("f", "/fail-once");
  Start(3);
  Publish("slow1");
  Publish("slow2");
  Publish("f");
  ASSERT_TRUE(receiver_.WaitFor("/slow", 2));
  EXPECT_TRUE(receiver_.WaitFor("/fail-once", 2));
  EXPECT_EQ(receiver_.Count("/slow"), 2);  // still held: the retry did not wait for them
  receiver_.Release();
}

// With no push subscription the workers sleep until there is one: no wake-ups for nothing (they woke at every
// rescan, eight threads each second by default).
TEST_F(PushDeliveryTest, IdleWorkersSleep) {
  Start(4);
  std::this_thread::sleep_for(milliseconds(100));  // started and waiting
  long before = SleepsOfThreads("ferry-push");
  ASSERT_GE(before, 0) << "no such thread";
  std::this_thread::sleep_for(milliseconds(500));  // 25 rescans
  EXPECT_LE(SleepsOfThreads("ferry-push") - before, 1);
  // And a subscription made now is still served.
  CreatePushSub("a", "/ok");
  Publish("a");
  EXPECT_TRUE(receiver_.WaitFor("/ok", 1));
}

// An idle subscription is looked at again less and less often (each look is a lease in the store), and a publish
// still reaches it at once.
TEST_F(PushDeliveryTest, AnIdleSubscriptionIsLookedAtLessOften) {
  CreatePushSub("idle", "/ok");
  Start(1, {.idle_recheck = milliseconds(10), .max_idle_recheck = milliseconds(100)});
  std::this_thread::sleep_for(milliseconds(300));  // past the first rechecks
  long const before = SleepsOfThreads("ferry-push");
  ASSERT_GE(before, 0) << "no such thread";
  std::this_thread::sleep_for(milliseconds(1000));
  // Every 10 ms that would be about 100 rounds; at the 100 ms ceiling about 10.
  EXPECT_LE(SleepsOfThreads("ferry-push") - before, 20);
  Publish("idle");
  EXPECT_TRUE(receiver_.WaitFor("/ok", 1));
}

}  // namespace
}  // namespace ferry
