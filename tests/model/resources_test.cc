#include "model/resources.h"

#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;

TEST(ResourcesTest, AcceptsPubsubIds) {
  EXPECT_TRUE(IsValidResourceId("bar"));
  EXPECT_TRUE(IsValidResourceId("bar-failed"));
  EXPECT_TRUE(IsValidResourceId("a.b_c~d+e%f"));
  EXPECT_TRUE(IsValidResourceId(std::string(255, 'x')));
}

TEST(ResourcesTest, RejectsBadIds) {
  EXPECT_FALSE(IsValidResourceId("a"));
  EXPECT_FALSE(IsValidResourceId("ab"));
  EXPECT_FALSE(IsValidResourceId("1abc"));
  EXPECT_FALSE(IsValidResourceId("goog-topic"));
  EXPECT_FALSE(IsValidResourceId("has space"));
  EXPECT_FALSE(IsValidResourceId(std::string(256, 'x')));
}

TEST(ResourcesTest, ParsesFullNames) {
  auto parsed = ParseResourceName("projects/p1/subscriptions/sub1", ResourceKind::kSubscription);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->project, "p1");
  EXPECT_EQ(parsed->id, "sub1");
  auto bad = ParseResourceName("projects/test-proj/topics/a", ResourceKind::kTopic);
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(bad.status().message(), "Invalid [topics] name: (name=projects/test-proj/topics/a)");
  EXPECT_THAT(ParseResourceName("projects/p/topics/bar", ResourceKind::kSubscription),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(ResourcesTest, RetryDelayGrowsExponentiallyWithinBounds) {
  RetryPolicy policy{.minimum_backoff_ms = 10'000, .maximum_backoff_ms = 60'000};
  EXPECT_EQ(RetryDelayMillis(policy, 1), 10'000);
  EXPECT_EQ(RetryDelayMillis(policy, 2), 20'000);
  EXPECT_EQ(RetryDelayMillis(policy, 3), 40'000);
  EXPECT_EQ(RetryDelayMillis(policy, 4), 60'000);
  EXPECT_EQ(RetryDelayMillis(policy, 50), 60'000);
  EXPECT_EQ(RetryDelayMillis({.minimum_backoff_ms = 0, .maximum_backoff_ms = 0}, 3), 0);
}

TEST(ResourcesTest, NormalizeFillsDefaultsAndChecksRanges) {
  Subscription sub;
  sub.name = "projects/p/subscriptions/sub1";
  sub.ack_deadline_seconds = 0;
  sub.message_retention_ms = 0;
  sub.dead_letter_policy = DeadLetterPolicy{"projects/p/topics/dlt", 0};
  ASSERT_THAT(NormalizeSubscription(sub), IsOk());
  EXPECT_EQ(sub.ack_deadline_seconds, 10);
  EXPECT_EQ(sub.message_retention_ms, kDefaultRetentionMillis);
  EXPECT_EQ(sub.dead_letter_policy->max_delivery_attempts, 5);

  sub.ack_deadline_seconds = 700;
  EXPECT_THAT(NormalizeSubscription(sub), StatusIs(StatusCode::kInvalidArgument));
  sub.ack_deadline_seconds = 10;
  sub.dead_letter_policy->max_delivery_attempts = 3;
  EXPECT_THAT(NormalizeSubscription(sub), StatusIs(StatusCode::kInvalidArgument));
  sub.dead_letter_policy->max_delivery_attempts = 6;
  sub.retry_policy = RetryPolicy{.minimum_backoff_ms = 300'000, .maximum_backoff_ms = 100'000};
  EXPECT_THAT(NormalizeSubscription(sub), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ResourcesTest, ValidatesMessages) {
  EXPECT_THAT(ValidateMessage({}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateMessage({.data = "x"}), IsOk());
  EXPECT_THAT(ValidateMessage({.attributes = {{"k", "v"}}}), IsOk());
  PubsubMessage big_value{.attributes = {{"k", std::string(1025, 'v')}}};
  EXPECT_THAT(ValidateMessage(big_value), StatusIs(StatusCode::kInvalidArgument));
  PubsubMessage big_key{.attributes = {{std::string(257, 'k'), "v"}}};
  EXPECT_THAT(ValidateMessage(big_key), StatusIs(StatusCode::kInvalidArgument));
  PubsubMessage many;
  for (int i = 0; i < 101; ++i) many.attributes["k" + std::to_string(i)] = "v";
  EXPECT_THAT(ValidateMessage(many), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateMessage({.data = "x", .ordering_key = "k1"}), IsOk());
  EXPECT_THAT(ValidateMessage({.data = "x", .ordering_key = std::string("k\0y", 3)}),
              StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry
