#include "triggers/pubsub_trigger.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/latency_stages.h"
#include "control/cluster_slots.h"
#include "store/delivery_policy.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::std::chrono::milliseconds;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kTopic[] = "projects/p/topics/bar";
constexpr char kDlt[] = "projects/p/topics/bar-failed";
constexpr char kSub[] = "projects/p/subscriptions/gcf-fn-bar";
constexpr char kDltSub[] = "projects/p/subscriptions/bar-failed-sub";

// Real pieces throughout: an SQLite broker, the supervisor, instances of tests/sdk/test_functions_main.cc.
class PubsubTriggerTest : public ::testing::Test {
 protected:
  PubsubTriggerTest()
      : store_(*MakeSqliteStore({.data_dir = dir_.path()})),
        broker_(*store_, clock_, BrokerOptions{.pull_wait = milliseconds(200)}),
        supervisor_([this](std::string const&, InstanceLine line) {
          std::lock_guard lock(mu_);
          lines_.push_back(line.message);
        }),
        dispatcher_(broker_, supervisor_, clock_, [this](ExecutionPhase phase, ExecutionRecord const& r) {
          if (phase != ExecutionPhase::kFinished) return;
          std::lock_guard lock(mu_);
          records_.push_back(r);
        }) {
    EXPECT_THAT(broker_.CreateTopic({.name = kTopic}), IsOk());
  }

  void Deploy(std::string entry_point, bool retry, int max_instances = 1,
              std::optional<DeadLetterPolicy> dlp = {}) {
    DeployInstances(std::move(entry_point), max_instances, std::move(dlp));
    dispatcher_.Start({.function = "fn", .subscription = kSub, .topic = kTopic, .retry = retry,
                       .capacity = max_instances});
  }

  // The trigger's subscription and the function's instances, without a dispatcher delivering to them.
  void DeployInstances(std::string entry_point, int max_instances, std::optional<DeadLetterPolicy> dlp = {}) {
    Subscription sub;
    sub.name = kSub;
    sub.topic = kTopic;
    sub.ack_deadline_seconds = 60;
    sub.dead_letter_policy = dlp;
    sub.retry_policy = RetryPolicy{.minimum_backoff_ms = 0, .maximum_backoff_ms = 0};
    ASSERT_THAT(broker_.CreateSubscription(sub), IsOk());
    InstanceSpec spec;
    spec.function = "fn";
    spec.entry_point = std::move(entry_point);
    spec.process.argv = {FERRY_TEST_FUNCTIONS};
    spec.max_instances = max_instances;
    supervisor_.Deploy(spec);
  }

  // The most executions under way at once, from the begin and end lines of tests/sdk's sleepy function.
  int PeakOfSleepy(std::size_t executions) {
    auto stamped = [&] {  // the instances' lines come through their pipes, a moment after the answers
      std::lock_guard lock(mu_);
      return std::count_if(lines_.begin(), lines_.end(), [](std::string const& text) {
        return text.rfind("begin ", 0) == 0 || text.rfind("end ", 0) == 0;
      });
    };
    EXPECT_TRUE(Eventually([&] { return stamped() >= static_cast<std::ptrdiff_t>(2 * executions); }));
    std::vector<std::pair<int64_t, int>> edges;
    {
      std::lock_guard lock(mu_);
      for (auto const& text : lines_) {
        if (text.rfind("begin ", 0) == 0) edges.emplace_back(std::stoll(text.substr(6)), +1);
        if (text.rfind("end ", 0) == 0) edges.emplace_back(std::stoll(text.substr(4)), -1);
      }
    }
    EXPECT_EQ(edges.size(), 2 * executions);
    std::sort(edges.begin(), edges.end());
    int running = 0, peak = 0;
    for (auto const& [t, d] : edges) peak = std::max(peak, running += d);
    return peak;
  }

  void Publish(std::string data, int times = 1) {
    std::vector<PubsubMessage> batch(static_cast<std::size_t>(times), PubsubMessage{.data = std::move(data)});
    ASSERT_THAT(broker_.Publish(kTopic, batch), IsOk());
  }

  // Waits (bounded) until `n` executions are recorded.
  std::vector<ExecutionRecord> WaitForRecords(std::size_t n) {
    for (int i = 0; i < 2000; ++i) {
      {
        std::lock_guard lock(mu_);
        if (records_.size() >= n) return records_;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    std::lock_guard lock(mu_);
    return records_;
  }

  // Waits (bounded) until `done()` holds.
  template <typename Done>
  static bool Eventually(Done done) {
    for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(milliseconds(5));
    return done();
  }

  int64_t Backlog() {
    auto stats = broker_.Stats();  // a named StatusOr: ranging over *temporary would dangle
    for (auto const& s : *stats) {
      if (s.name == kSub) return s.backlog;
    }
    return -1;
  }

  ferry::testing::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<Store> store_;
  Broker broker_;
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<ExecutionRecord> records_;
  Supervisor supervisor_;
  PubsubDispatcher dispatcher_;  // last: stops before what it uses
};

TEST_F(PubsubTriggerTest, SuccessfulExecutionAcksTheMessage) {
  Deploy("greet", true);
  Publish(R"({"name": "ada"})");
  auto records = WaitForRecords(1);
  ASSERT_THAT(records, SizeIs(1));
  EXPECT_EQ(records[0].status, ExecutionStatus::kOk) << records[0].error;
  EXPECT_EQ(records[0].attempt, 1);
  EXPECT_EQ(records[0].execution_id.size(), 20u);
  for (int i = 0; i < 200 && Backlog() != 0; ++i) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_EQ(Backlog(), 0);
  std::lock_guard lock(mu_);
  EXPECT_TRUE(std::any_of(lines_.begin(), lines_.end(),
                          [](auto const& l) { return l.find("greeting ada on attempt 1 for projects/p/topics/bar") !=
                                                     std::string::npos; }));
}

TEST_F(PubsubTriggerTest, FailuresRetryThenDeadLetter) {
  ASSERT_THAT(broker_.CreateTopic({.name = kDlt}), IsOk());
  Subscription dead;
  dead.name = kDltSub;
  dead.topic = kDlt;
  ASSERT_THAT(broker_.CreateSubscription(dead), IsOk());
  Deploy("explode", true, 1, DeadLetterPolicy{kDlt, 5});
  Publish("{}");
  auto records = WaitForRecords(5);
  ASSERT_THAT(records, SizeIs(5));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(records[static_cast<std::size_t>(i)].status, ExecutionStatus::kError);
    EXPECT_EQ(records[static_cast<std::size_t>(i)].attempt, i + 1);
  }
  std::vector<ReceivedMessage> dead_letters;
  for (int i = 0; i < 200 && dead_letters.empty(); ++i) {
    dead_letters = *broker_.Pull(kDltSub, 10, true);
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_THAT(dead_letters, SizeIs(1));
  EXPECT_EQ(dead_letters[0].message.attributes.at("CloudPubSubDeadLetterSourceDeliveryCount"), "5");
  // The function's last error travels with the message.
  ASSERT_TRUE(dead_letters[0].message.attributes.contains(kLastErrorAttribute));
  EXPECT_THAT(dead_letters[0].message.attributes.at(kLastErrorAttribute), StartsWith("error: "));
  // The dead letter took the place of a sixth delivery, and the message has left the subscription: there was
  // no sixth attempt, and none can come.
  EXPECT_TRUE(Eventually([&] { return Backlog() == 0; }));
  std::lock_guard lock(mu_);
  EXPECT_THAT(records_, SizeIs(5));
}

// `ferry serve --latency-stages`: trigger_total times a message from its publish to its first execution's start;
// a retry is not that path, so five attempts count once.
TEST_F(PubsubTriggerTest, TheTriggerStageTimesTheFirstDeliveryOnly) {
  ASSERT_THAT(broker_.CreateTopic({.name = kDlt}), IsOk());
  Deploy("explode", true, 1, DeadLetterPolicy{kDlt, 5});
  latency::Enable(true);
  int64_t const before = latency::Count(Stage::kTriggerTotal);
  Publish("{}");
  EXPECT_THAT(WaitForRecords(5), SizeIs(5));
  EXPECT_EQ(latency::Count(Stage::kTriggerTotal) - before, 1) << latency::RenderMetrics();
  EXPECT_NE(latency::RenderMetrics().find("stage=\"trigger_total\""), std::string::npos);
  latency::Enable(false);
}

TEST_F(PubsubTriggerTest, WithoutRetryAFailureIsAckedAndNotRedelivered) {
  Deploy("explode", false);
  Publish("{}");
  ASSERT_THAT(WaitForRecords(1), SizeIs(1));
  EXPECT_TRUE(Eventually([&] { return Backlog() == 0; })) << "acked: nothing left to deliver again";
  std::lock_guard lock(mu_);
  EXPECT_THAT(records_, SizeIs(1));
  EXPECT_EQ(records_[0].status, ExecutionStatus::kError);
}

TEST_F(PubsubTriggerTest, BurstNeverExceedsMaxInstances) {
  Deploy("sleepy", true, 2);
  Publish(R"({"ms": 5})", 60);
  auto records = WaitForRecords(60);
  ASSERT_THAT(records, SizeIs(60));
  for (auto const& r : records) EXPECT_EQ(r.status, ExecutionStatus::kOk) << r.error;
  EXPECT_EQ(supervisor_.UsageOf("fn").started_total, 2);
  EXPECT_LE(PeakOfSleepy(60), 2);
}

// Two nodes (each its own dispatcher and ClusterSlots, on one store) deliver one function's events: together they
// run every one, and never more than its max_instances x concurrency at once, though each alone could. (Which
// node runs more is a race: the first to ask takes the slots, and keeps them while it has work.)
TEST_F(PubsubTriggerTest, NodesSharingTheClusterSlotsStayWithinTheLimitTogether) {
  DeployInstances("sleepy", /*max_instances=*/4);  // room for both nodes' two at once: the slots must hold
  std::mutex mu;
  std::map<std::string, int> ran;  // by node
  auto node = [&](std::string name) {
    return [&mu, &ran, name](ExecutionPhase phase, ExecutionRecord const& r) {
      if (phase != ExecutionPhase::kFinished || r.status != ExecutionStatus::kOk) return;
      std::lock_guard lock(mu);
      ++ran[name];
    };
  };
  ClusterSlots slots_a(*store_, clock_, "a"), slots_b(*store_, clock_, "b");
  PubsubDispatcher a(broker_, supervisor_, clock_, node("a"), &slots_a);
  PubsubDispatcher b(broker_, supervisor_, clock_, node("b"), &slots_b);
  PubsubTriggerSpec spec{.function = "fn", .subscription = kSub, .topic = kTopic, .retry = true, .capacity = 2};
  a.Start(spec);
  b.Start(spec);
  Publish(R"({"ms": 20})", 60);
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return ran["a"] + ran["b"] >= 60;
  }));
  EXPECT_LE(PeakOfSleepy(60), 2);
  EXPECT_TRUE(Eventually([&] { return Backlog() == 0; }));  // every one acked
}

TEST(ExecutionIdTest, IdsGrowInTheOrderTheyAreMadeAndNeverRepeat) {
  auto const now_ms = std::chrono::duration_cast<milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<std::vector<std::string>> made(4);
  std::vector<std::thread> threads;
  for (auto& ids : made) {
    threads.emplace_back([&ids] {
      for (int i = 0; i < 20000; ++i) ids.push_back(NewExecutionId());  // far more than 256 a millisecond
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (auto const& ids : made) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), 4u * 20000u);
  std::string const first = *all.begin();
  ASSERT_EQ(first.size(), 20u);
  EXPECT_EQ(first.find_first_not_of("0123456789abcdef"), std::string::npos) << first;
  // The first 13 digits follow the wall clock: a millisecond shifted by 8 bits.
  int64_t const stamped_ms = static_cast<int64_t>(std::stoull(first.substr(0, 13), nullptr, 16) >> 8);
  EXPECT_LE(std::abs(stamped_ms - now_ms), 5000) << first;
  // The last 7 are this process's own, the same in every id.
  EXPECT_EQ(first.substr(13), all.rbegin()->substr(13));
}

TEST(PubsubInvocationTest, LegacyEventBodyMatchesTheFunctionsFramework) {
  ReceivedMessage r{.ack_id = "1-2-3",
                    .message = {.data = "{}", .attributes = {{"k", "v"}}, .message_id = "2", .publish_time_ms = 0},
                    .attempt = 3};
  auto inv = PubsubDispatcher::MakeInvocation({.function = "fn", .subscription = kSub, .topic = kTopic}, r, "x1");
  auto body = nlohmann::json::parse(inv.body);
  EXPECT_EQ(body["context"]["eventId"], "2");
  EXPECT_EQ(body["context"]["eventType"], "google.pubsub.topic.publish");
  EXPECT_EQ(body["context"]["resource"]["name"], kTopic);
  EXPECT_EQ(body["context"]["resource"]["service"], "pubsub.googleapis.com");
  EXPECT_EQ(body["data"]["@type"], "type.googleapis.com/google.pubsub.v1.PubsubMessage");
  EXPECT_EQ(body["data"]["data"], "e30=");
  EXPECT_EQ(body["data"]["attributes"]["k"], "v");
  EXPECT_EQ(body["data"]["deliveryAttempt"], 3);
  EXPECT_EQ(inv.execution_id, "x1");
  EXPECT_TRUE(inv.headers.empty());

  auto ce = PubsubDispatcher::MakeInvocation(
      {.function = "fn", .subscription = kSub, .topic = kTopic, .signature = "cloudevent"}, r, "x2");
  EXPECT_THAT(ce.headers, ::testing::Contains(std::pair<std::string, std::string>(
                              "ce-type", "google.cloud.pubsub.topic.v1.messagePublished")));
  EXPECT_EQ(nlohmann::json::parse(ce.body)["message"]["messageId"], "2");
}

// Google's client libraries put the publisher's trace context in the googclient_traceparent attribute (with
// OpenTelemetry tracing on): it reaches the function, as every attribute does, in both shapes.
TEST(PubsubInvocationTest, TraceContextAttributesReachTheFunctionInBothShapes) {
  std::string const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  ReceivedMessage r{.ack_id = "1-2-1",
                    .message = {.data = "x", .attributes = {{"googclient_traceparent", traceparent}},
                                .message_id = "2"},
                    .attempt = 1};
  auto legacy = PubsubDispatcher::MakeInvocation({.function = "fn", .subscription = kSub, .topic = kTopic}, r, "x1");
  EXPECT_EQ(nlohmann::json::parse(legacy.body)["data"]["attributes"]["googclient_traceparent"], traceparent);
  auto ce = PubsubDispatcher::MakeInvocation(
      {.function = "fn", .subscription = kSub, .topic = kTopic, .signature = "cloudevent"}, r, "x2");
  EXPECT_EQ(nlohmann::json::parse(ce.body)["message"]["attributes"]["googclient_traceparent"], traceparent);
}

}  // namespace
}  // namespace ferry
