#include "broker/broker.h"

#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/latency_stages.h"
#include "testing/fake_clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::FakeClock;
using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::std::chrono::milliseconds;
using ::std::chrono::seconds;
using ::testing::SizeIs;

constexpr char kTopic[] = "projects/p/topics/bar";
constexpr char kDlt[] = "projects/p/topics/bar-failed";
constexpr char kSub[] = "projects/p/subscriptions/sub1";
constexpr char kDltSub[] = "projects/p/subscriptions/bar-failed-sub";

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() {
    auto store = MakeSqliteStore({.data_dir = dir_.path()});
    EXPECT_THAT(store, IsOk());
    store_ = *std::move(store);
    // Only the tests run maintenance, and pulls never wait unless a test asks them to.
    broker_ = std::make_unique<Broker>(*store_, clock_,
                                       BrokerOptions{.pull_wait = milliseconds(0), .maintenance_interval = {}});
    EXPECT_THAT(broker_->CreateTopic({.name = kTopic}), IsOk());
  }

  void CreateSub(std::optional<DeadLetterPolicy> dlp = {}, std::optional<RetryPolicy> retry = {}) {
    Subscription sub;
    sub.name = kSub;
    sub.topic = kTopic;
    sub.dead_letter_policy = dlp;
    sub.retry_policy = retry;
    ASSERT_THAT(broker_->CreateSubscription(sub), IsOk());
  }

  void CreateDeadLetterTopic() {
    ASSERT_THAT(broker_->CreateTopic({.name = kDlt}), IsOk());
    Subscription sub;
    sub.name = kDltSub;
    sub.topic = kDlt;
    ASSERT_THAT(broker_->CreateSubscription(sub), IsOk());
  }

  void Publish(std::string data) {
    ASSERT_THAT(broker_->Publish(kTopic, {PubsubMessage{.data = std::move(data)}}), IsOk());
  }

  std::vector<ReceivedMessage> PullNow(char const* sub = kSub, int max = 10) {
    auto r = broker_->Pull(sub, max, true);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? *r : std::vector<ReceivedMessage>{};
  }

  ferry::testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerTest, RedeliversAfterAckDeadline) {
  CreateSub();
  Publish("m1");
  ASSERT_THAT(PullNow(), SizeIs(1));
  clock_.Advance(seconds(9));
  EXPECT_THAT(PullNow(), SizeIs(0));
  clock_.Advance(seconds(2));
  auto again = PullNow();
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(again[0].message.data, "m1");
  EXPECT_EQ(broker_->Counters().subscriptions[kSub].expired, 1);
}

TEST_F(BrokerTest, AcknowledgedMessageIsNeverRedelivered) {
  CreateSub();
  Publish("m1");
  auto got = PullNow();
  ASSERT_THAT(got, SizeIs(1));
  ASSERT_THAT(broker_->Acknowledge(kSub, {got[0].ack_id}), IsOk());
  clock_.Advance(seconds(600));
  EXPECT_THAT(PullNow(), SizeIs(0));
  EXPECT_EQ(broker_->Counters().subscriptions[kSub].acked, 1);
}

TEST_F(BrokerTest, ModifyAckDeadlineExtendsTheLease) {
  CreateSub();
  Publish("m1");
  auto got = PullNow();
  ASSERT_THAT(broker_->ModifyAckDeadline(kSub, {got[0].ack_id}, 60), IsOk());
  clock_.Advance(seconds(59));
  EXPECT_THAT(PullNow(), SizeIs(0));
  clock_.Advance(seconds(1));
  EXPECT_THAT(PullNow(), SizeIs(1));
}

TEST_F(BrokerTest, NackRedeliversAtOnceWithoutRetryPolicy) {
  CreateSub();
  Publish("m1");
  auto got = PullNow();
  ASSERT_THAT(broker_->ModifyAckDeadline(kSub, {got[0].ack_id}, 0), IsOk());
  EXPECT_THAT(PullNow(), SizeIs(1));
  EXPECT_EQ(broker_->Counters().subscriptions[kSub].nacked, 1);
}

TEST_F(BrokerTest, NackWaitsForExponentialBackoff) {
  CreateSub({}, RetryPolicy{.minimum_backoff_ms = 10'000, .maximum_backoff_ms = 30'000});
  Publish("m1");
  // Each failed attempt n waits min(10s * 2^(n-1), 30s): 10, 20, 30, 30.
  for (int delay : {10, 20, 30, 30}) {
    auto got = PullNow();
    ASSERT_THAT(got, SizeIs(1));
    ASSERT_THAT(broker_->ModifyAckDeadline(kSub, {got[0].ack_id}, 0), IsOk());
    clock_.Advance(seconds(delay) - milliseconds(1));
    EXPECT_THAT(PullNow(), SizeIs(0)) << "redelivered before its " << delay << "s backoff";
    clock_.Advance(milliseconds(1));
  }
  EXPECT_THAT(PullNow(), SizeIs(1));
}

TEST_F(BrokerTest, DeadLettersAfterMaxDeliveryAttempts) {
  CreateDeadLetterTopic();
  CreateSub(DeadLetterPolicy{kDlt, 6}, RetryPolicy{.minimum_backoff_ms = 1'000, .maximum_backoff_ms = 1'000});
  ASSERT_THAT(broker_->Publish(kTopic, {PubsubMessage{.data = "{}", .attributes = {{"a", "1"}}}}), IsOk());
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto got = PullNow();
    ASSERT_THAT(got, SizeIs(1)) << "attempt " << attempt;
    EXPECT_EQ(got[0].delivery_attempt, attempt);
    ASSERT_THAT(broker_->ModifyAckDeadline(kSub, {got[0].ack_id}, 0), IsOk());
    clock_.Advance(seconds(1));
  }
  EXPECT_THAT(PullNow(), SizeIs(0));
  auto dead = PullNow(kDltSub);
  ASSERT_THAT(dead, SizeIs(1));
  EXPECT_EQ(dead[0].message.data, "{}");
  EXPECT_EQ(dead[0].message.attributes.at("a"), "1");
  EXPECT_EQ(dead[0].message.attributes.at("CloudPubSubDeadLetterSourceDeliveryCount"), "6");
  EXPECT_EQ(dead[0].message.attributes.at("CloudPubSubDeadLetterSourceSubscription"), "sub1");
  EXPECT_EQ(dead[0].message.attributes.at("CloudPubSubDeadLetterSourceSubscriptionProject"), "p");
  EXPECT_TRUE(dead[0].message.attributes.contains("CloudPubSubDeadLetterSourceTopicPublishTime"));
  EXPECT_EQ(broker_->Counters().subscriptions[kSub].dead_lettered, 1);
}

TEST_F(BrokerTest, ExpiredLastAttemptIsDeadLetteredInTheBackground) {
  CreateDeadLetterTopic();
  CreateSub(DeadLetterPolicy{kDlt, 5});
  Publish("m1");
  for (int attempt = 1; attempt <= 5; ++attempt) {
    ASSERT_THAT(PullNow(), SizeIs(1));
    clock_.Advance(seconds(10));  // the lease expires unacknowledged
  }
  ASSERT_THAT(broker_->RunMaintenance(), IsOk());
  EXPECT_THAT(PullNow(kDltSub), SizeIs(1));
  EXPECT_THAT(PullNow(), SizeIs(0));
}

TEST_F(BrokerTest, DeliveryAttemptIsOmittedWithoutDeadLetterPolicy) {
  CreateSub();
  Publish("m1");
  EXPECT_EQ(PullNow()[0].delivery_attempt, 0);
}

TEST_F(BrokerTest, WaitingPullWakesOnPublish) {
  CreateSub();
  // A long wait and a long recheck: only the publish's notification can end this pull early.
  Broker waiting(*store_, clock_, BrokerOptions{.pull_wait = seconds(30), .pull_recheck = seconds(30),
                                                .maintenance_interval = {}});
  auto pulled = std::async(std::launch::async, [&] { return waiting.Pull(kSub, 10, false); });
  ASSERT_EQ(pulled.wait_for(milliseconds(200)), std::future_status::timeout);
  ASSERT_THAT(waiting.Publish(kTopic, {PubsubMessage{.data = "late"}}), IsOk());
  ASSERT_EQ(pulled.wait_for(seconds(10)), std::future_status::ready);
  auto got = pulled.get();
  ASSERT_THAT(got, IsOk());
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ((*got)[0].message.data, "late");
}

TEST_F(BrokerTest, APublishWakesOneWaitingPullPerSubscription) {
  CreateSub();
  constexpr char kOther[] = "projects/p/subscriptions/other";
  ASSERT_THAT(broker_->CreateSubscription({.name = kOther, .topic = kTopic}), IsOk());
  Broker waiting(*store_, clock_, BrokerOptions{.pull_wait = seconds(30), .pull_recheck = seconds(30),
                                                .maintenance_interval = {}});
  // Three streams of one subscriber wait on kSub, one on kOther; the message needs one lease on each.
  std::vector<std::future<StatusOr<std::vector<ReceivedMessage>>>> pulls;
  std::atomic<bool> done{false};
  for (char const* sub : {kSub, kSub, kSub, kOther}) {
    pulls.push_back(std::async(std::launch::async, [&waiting, &done, sub] {
      return waiting.Pull(sub, {.max_messages = 10, .wait = seconds(30), .cancelled = &done});
    }));
  }
  while (waiting.WaitingPulls() < 4) std::this_thread::sleep_for(milliseconds(1));
  latency::Enable(true);
  int64_t writes_before = latency::Count(Stage::kStoreQueue);
  ASSERT_THAT(waiting.Publish(kTopic, {PubsubMessage{.data = "one"}}), IsOk());
  ASSERT_EQ(pulls[3].wait_for(seconds(10)), std::future_status::ready);
  auto other = pulls[3].get();
  ASSERT_THAT(other, IsOk());
  EXPECT_THAT(*other, SizeIs(1));
  while (waiting.WaitingPulls() > 2) std::this_thread::sleep_for(milliseconds(1));
  std::this_thread::sleep_for(milliseconds(100));  // a pull woken for nothing would lease by now
  // The publish and one lease per subscription: no stream woke to find nothing.
  EXPECT_EQ(latency::Count(Stage::kStoreQueue) - writes_before, 3) << latency::RenderMetrics();
  EXPECT_EQ(waiting.WaitingPulls(), 2);
  latency::Enable(false);
  done = true;
  waiting.WakePulls();
  int got = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = pulls[i].get();
    ASSERT_THAT(r, IsOk());
    got += static_cast<int>(r->size());
  }
  EXPECT_EQ(got, 1);
}

TEST_F(BrokerTest, UpdateAppliesOnlyTheMaskedFields) {
  CreateDeadLetterTopic();
  CreateSub();
  Subscription patch;
  patch.name = kSub;
  patch.dead_letter_policy = DeadLetterPolicy{kDlt, 6};
  patch.retry_policy = RetryPolicy{.minimum_backoff_ms = 120'000};
  patch.ack_deadline_seconds = 99;  // not in the mask
  auto updated = broker_->UpdateSubscription(patch, {"deadLetterPolicy", "retry_policy"});
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->ack_deadline_seconds, 10);
  EXPECT_EQ(updated->dead_letter_policy->max_delivery_attempts, 6);
  EXPECT_EQ(updated->retry_policy->minimum_backoff_ms, 120'000);
  EXPECT_EQ(updated->retry_policy->maximum_backoff_ms, 600'000);
  EXPECT_THAT(broker_->UpdateSubscription(patch, {"bogus"}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->UpdateSubscription(patch, {}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->UpdateSubscription(patch, {"topic"}), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(BrokerTest, RejectsBadRequestsWithInvalidArgument) {
  CreateSub();
  std::vector<PubsubMessage> too_many(1001, PubsubMessage{.data = "x"});
  EXPECT_THAT(broker_->Publish(kTopic, too_many), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->Publish(kTopic, {}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->Publish(kTopic, {PubsubMessage{}}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->Pull(kSub, 0, true), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->ModifyAckDeadline(kSub, {"1-1-1"}, 601), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->Acknowledge(kSub, {}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->CreateTopic({.name = "projects/p/topics/goog-x"}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(broker_->Pull("projects/p/subscriptions/nosuch", 1, true), StatusIs(StatusCode::kNotFound));
  // Nothing accepted before is lost.
  Publish("ok");
  EXPECT_THAT(PullNow(), SizeIs(1));
}

TEST_F(BrokerTest, PullCapsAtOneThousandMessages) {
  CreateSub();
  std::vector<PubsubMessage> batch(1000, PubsubMessage{.data = "x"});
  ASSERT_THAT(broker_->Publish(kTopic, batch), IsOk());
  ASSERT_THAT(broker_->Publish(kTopic, {PubsubMessage{.data = "y"}}), IsOk());
  EXPECT_THAT(PullNow(kSub, 5000), SizeIs(1000));
  EXPECT_THAT(PullNow(kSub, 5000), SizeIs(1));
}

TEST_F(BrokerTest, ListsPageWithTokens) {
  for (auto id : {"t-1", "t-2"}) {
    ASSERT_THAT(broker_->CreateTopic({.name = std::string("projects/p/topics/") + id}), IsOk());
  }
  auto first = broker_->ListTopics("p", 2, "");
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(first->items, SizeIs(2));
  EXPECT_EQ(first->next_page_token, "projects/p/topics/t-1");
  auto second = broker_->ListTopics("p", 2, first->next_page_token);
  ASSERT_THAT(second->items, SizeIs(1));
  EXPECT_EQ(second->items[0].name, "projects/p/topics/t-2");
  EXPECT_EQ(second->next_page_token, "");
}

}  // namespace
}  // namespace ferry
