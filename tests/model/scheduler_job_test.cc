#include "model/scheduler_job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using nlohmann::json;

ScheduleSpec Created(json const& body) {
  ScheduleSpec spec;
  spec.project = "p";
  spec.region = "local";
  spec.name = "hook";
  spec.time_zone.clear();
  EXPECT_THAT(ApplyCloudSchedulerJob(body, {}, spec), IsOk());
  EXPECT_THAT(NormalizeScheduleSpec(spec), IsOk());
  return spec;
}

// What gcloud scheduler jobs create http and update http send (gcloud 528).
TEST(SchedulerJobTest, AnHttpTargetAndGcloudsUpdateOfOneField) {
  ScheduleSpec spec = Created(json::parse(R"({"schedule": "0 4 * * *", "httpTarget": {
      "uri": "http://127.0.0.1:9/hook?x=1", "body": "Zmlyc3Q=", "headers": {"X-Team": "bar"}}})"));
  EXPECT_EQ(spec.uri, "http://127.0.0.1:9/hook?x=1");
  EXPECT_EQ(spec.http_method, "POST");
  EXPECT_EQ(spec.data, "first");
  EXPECT_EQ(spec.http_headers.at("X-Team"), "bar");
  json update = json::parse(R"({"httpTarget": {"body": "c2Vjb25k", "httpMethod": "POST"},
      "retryConfig": {"maxBackoffDuration": "3600s", "maxDoublings": 5, "minBackoffDuration": "5s", "retryCount": 1},
      "timeZone": "Etc/UTC"})");
  ASSERT_THAT(ApplyCloudSchedulerJob(update, {"httpTarget.body", "retryConfig.retryCount"}, spec), IsOk());
  ASSERT_THAT(NormalizeScheduleSpec(spec), IsOk());
  EXPECT_EQ(spec.data, "second");
  EXPECT_EQ(spec.retry_count, 1);
  EXPECT_EQ(spec.uri, "http://127.0.0.1:9/hook?x=1");
  EXPECT_EQ(spec.http_headers.at("X-Team"), "bar");
  json shown = CloudSchedulerJobJson(spec, {});
  EXPECT_EQ(shown["httpTarget"]["body"], "c2Vjb25k");
  EXPECT_EQ(shown["retryConfig"]["retryCount"], 1);
}

TEST(SchedulerJobTest, WhatFerryCannotDoForAnHttpTargetIsRefused) {
  ScheduleSpec spec;
  spec.project = "p";
  spec.name = "hook";
  EXPECT_THAT(ApplyCloudSchedulerJob(json::parse(R"({"schedule": "* * * * *", "httpTarget": {
      "uri": "http://h/", "oidcToken": {"serviceAccountEmail": "a@b"}}})"), {}, spec),
              StatusIs(StatusCode::kInvalidArgument));
  spec = ScheduleSpec{.project = "p", .name = "hook"};
  ASSERT_THAT(ApplyCloudSchedulerJob(json::parse(R"({"schedule": "* * * * *", "httpTarget": {
      "uri": "ftp://h/"}})"), {}, spec), IsOk());
  EXPECT_THAT(NormalizeScheduleSpec(spec), StatusIs(StatusCode::kInvalidArgument));
  spec = ScheduleSpec{.project = "p", .name = "hook"};
  ASSERT_THAT(ApplyCloudSchedulerJob(json::parse(R"({"schedule": "* * * * *", "httpTarget": {
      "uri": "http://h/", "headers": {"Bad Header": "x"}}})"), {}, spec), IsOk());
  EXPECT_THAT(NormalizeScheduleSpec(spec), StatusIs(StatusCode::kInvalidArgument));
}

TEST(SchedulerJobTest, AnHttpTargetsHeadersAreBounded) {
  json headers = json::object();
  for (int i = 0; i < 101; ++i) headers["X-H" + std::to_string(i)] = "v";
  ScheduleSpec spec{.project = "p", .name = "hook"};
  ASSERT_THAT(ApplyCloudSchedulerJob(json{{"schedule", "* * * * *"},
                                          {"httpTarget", {{"uri", "http://h/"}, {"headers", headers}}}},
                                     {}, spec),
              IsOk());
  EXPECT_THAT(NormalizeScheduleSpec(spec), StatusIs(StatusCode::kInvalidArgument));
  spec.http_headers.erase("X-H0");
  EXPECT_THAT(NormalizeScheduleSpec(spec), IsOk());
}

}  // namespace
}  // namespace ferry
