#include "model/json_codec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;

TEST(JsonCodecTest, SubscriptionMatchesGcloudCapture) {
  // The request body of `gcloud pubsub subscriptions create sub-full ...` (shared/reference/gcloud-http/10).
  auto json = Json::parse(R"({"ackDeadlineSeconds": 30, "deadLetterPolicy": {"deadLetterTopic":
      "projects/test-proj/topics/bar-failed", "maxDeliveryAttempts": 6}, "enableMessageOrdering": true,
      "filter": "attributes.k1 = \"v1\"", "name": "projects/test-proj/subscriptions/sub-full",
      "retryPolicy": {"maximumBackoff": "300s", "minimumBackoff": "120s"},
      "topic": "projects/test-proj/topics/bar"})");
  auto sub = SubscriptionFromJson(json);
  ASSERT_THAT(sub, IsOk());
  ASSERT_THAT(NormalizeSubscription(*sub), IsOk());
  EXPECT_EQ(SubscriptionToJson(*sub).dump(),
            R"({"name":"projects/test-proj/subscriptions/sub-full","topic":"projects/test-proj/topics/bar",)"
            R"("pushConfig":{},"ackDeadlineSeconds":30,"messageRetentionDuration":"604800s",)"
            R"("enableMessageOrdering":true,"filter":"attributes.k1 = \"v1\"","deadLetterPolicy":{)"
            R"("deadLetterTopic":"projects/test-proj/topics/bar-failed","maxDeliveryAttempts":6},)"
            R"("retryPolicy":{"minimumBackoff":"120s","maximumBackoff":"300s"}})");
}

TEST(JsonCodecTest, AcceptsSnakeCaseNames) {
  auto sub = SubscriptionFromJson(Json::parse(R"({"ack_deadline_seconds": "20", "topic": "projects/p/topics/t"})"));
  ASSERT_THAT(sub, IsOk());
  EXPECT_EQ(sub->ack_deadline_seconds, 20);
}

TEST(JsonCodecTest, RejectsUnknownFieldsAndWrongTypes) {
  EXPECT_THAT(SubscriptionFromJson(Json::parse(R"({"bogus": 1})")), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SubscriptionFromJson(Json::parse(R"({"ackDeadlineSeconds": "x"})")),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(SubscriptionFromJson(Json::parse(R"({"retryPolicy": {"minimumBackoff": 5}})")),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(TopicFromJson(Json::parse(R"({"labels": {"a": 1}})")), StatusIs(StatusCode::kInvalidArgument));
}

TEST(JsonCodecTest, MessagesCarryBase64Data) {
  auto m = MessageFromJson(Json::parse(R"({"attributes": {"k1": "v1"}, "data": "aGVsbG8gd29ybGQ="})"));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->data, "hello world");
  EXPECT_THAT(MessageFromJson(Json::parse(R"({"data": "!!!"})")), StatusIs(StatusCode::kInvalidArgument));
  m->message_id = "4";
  m->publish_time_ms = 1795833207381;
  EXPECT_EQ(MessageToJson(*m).dump(),
            R"({"data":"aGVsbG8gd29ybGQ=","attributes":{"k1":"v1"},"messageId":"4",)"
            R"("publishTime":"2026-11-28T02:33:27.381Z"})");
}

TEST(JsonCodecTest, PullResponseIsTheSameJsonAsTheTree) {
  ReceivedMessage a{.ack_id = "1-2-3",
                    .message = {.data = "hi\n",
                                .attributes = {{"k\"ey", "v\\al"}, {"ctl", std::string("\x01", 1)}},
                                .message_id = "2",
                                .publish_time_ms = 1795833207381,
                                .ordering_key = "ord"},
                    .delivery_attempt = 3};
  ReceivedMessage b{.ack_id = "1-3-1", .message = {.attributes = {{"only", "attrs"}}, .message_id = "3"}};
  auto text = PullResponseJson({a, b});
  Json expected = {{"receivedMessages", {ReceivedMessageToJson(a), ReceivedMessageToJson(b)}}};
  EXPECT_EQ(Json::parse(text), expected);
  EXPECT_EQ(PullResponseJson({}), "{}");
}

}  // namespace
}  // namespace ferry
