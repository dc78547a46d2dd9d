#include "store/delivery_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;

Subscription Sub() {
  Subscription s;
  s.name = "projects/p/subscriptions/bar";
  s.topic = "projects/p/topics/bar";
  return s;
}

TEST(DeliveryPolicyTest, WithoutPoliciesAFailedMessageIsDeliverableAtOnceForever) {
  auto after = OnFailedAttempt(Sub(), 1000, 5'000);
  EXPECT_FALSE(after.dead_letter);
  EXPECT_EQ(after.retry_at_ms, 5'000);
  EXPECT_FALSE(Exhausted(Sub(), 1000));
}

TEST(DeliveryPolicyTest, RetryPolicyBacksOffFromTheFailure) {
  auto sub = Sub();
  sub.retry_policy = RetryPolicy{.minimum_backoff_ms = 120'000, .maximum_backoff_ms = 600'000};
  EXPECT_EQ(OnFailedAttempt(sub, 1, 5'000).retry_at_ms, 5'000 + RetryDelayMillis(*sub.retry_policy, 1));
  EXPECT_EQ(OnFailedAttempt(sub, 1, 5'000).retry_at_ms, 125'000);  // the walkthrough's 2 minutes
  EXPECT_EQ(OnFailedAttempt(sub, 50, 5'000).retry_at_ms, 605'000);  // never past the maximum
}

TEST(DeliveryPolicyTest, TheLastAttemptDeadLetters) {
  auto sub = Sub();
  sub.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = "projects/p/topics/bar-failed",
                                            .max_delivery_attempts = 6};
  EXPECT_FALSE(OnFailedAttempt(sub, 5, 0).dead_letter);
  EXPECT_TRUE(OnFailedAttempt(sub, 6, 0).dead_letter);
  EXPECT_TRUE(Exhausted(sub, 7));
}

TEST(DeliveryPolicyTest, DeadLetterCopyCarriesItsSourceAndLastError) {
  PubsubMessage m{.data = "{}", .message_id = "77", .publish_time_ms = 1'800'000'000'000};
  m.attributes["mine"] = "kept";
  // An error longer than an attribute value may be, cut at a character boundary (é is 2 bytes).
  std::string error = std::string(1023, 'x') + "\xc3\xa9";
  auto copy = DeadLetterCopy(m, Sub(), 6, error);
  ASSERT_THAT(copy, IsOk());
  EXPECT_EQ(copy->data, "{}");
  EXPECT_EQ(copy->attributes.at("mine"), "kept");
  EXPECT_EQ(copy->attributes.at("CloudPubSubDeadLetterSourceDeliveryCount"), "6");
  EXPECT_EQ(copy->attributes.at("CloudPubSubDeadLetterSourceSubscription"), "bar");
  EXPECT_EQ(copy->attributes.at("CloudPubSubDeadLetterSourceSubscriptionProject"), "p");
  EXPECT_EQ(copy->attributes.at("CloudPubSubDeadLetterSourceTopicPublishTime"), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(copy->attributes.at(kLastErrorAttribute), std::string(1023, 'x'));
  EXPECT_EQ(copy->attributes.at(kSourceMessageIdAttribute), "77");  // what its executions are recorded under
  EXPECT_FALSE(DeadLetterCopy(m, Sub(), 6, std::nullopt)->attributes.contains(kLastErrorAttribute));

  auto bad = Sub();
  bad.name = "not a name";
  EXPECT_THAT(DeadLetterCopy(m, bad, 6, std::nullopt), StatusIs(StatusCode::kInvalidArgument));
}

TEST(DeliveryPolicyTest, RedriveCopyDropsTheDeadLetterAttributesAndCountsRedrives) {
  PubsubMessage dead{.data = "d", .attributes = {{"k", "v"},
                                               {"CloudPubSubDeadLetterSourceDeliveryCount", "6"},
                                               {"CloudPubSubDeadLetterSourceSubscription", "s"},
                                               {"CloudPubSubDeadLetterSourceSubscriptionProject", "p"},
                                               {"CloudPubSubDeadLetterSourceTopicPublishTime", "t"},
                                               {kLastErrorAttribute, "boom"}},
                     .ordering_key = "key"};
  PubsubMessage once = RedriveCopy(dead);
  EXPECT_EQ(once.data, "d");
  EXPECT_EQ(once.ordering_key, "key");
  EXPECT_EQ(once.attributes, (Attributes{{"k", "v"}, {kRedriveCountAttribute, "1"}}));
  once.attributes[kLastErrorAttribute] = "again";
  EXPECT_EQ(RedriveCopy(once).attributes, (Attributes{{"k", "v"}, {kRedriveCountAttribute, "2"}}));
  dead.attributes[kRedriveCountAttribute] = "not a number";
  EXPECT_EQ(RedriveCopy(dead).attributes.at(kRedriveCountAttribute), "1");
}

}  // namespace
}  // namespace ferry
