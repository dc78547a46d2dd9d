#include "model/cloud_function.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;
using nlohmann::json;

constexpr char kName[] = "projects/p/locations/us-central1/functions/bar";

// What gcloud 528 sends for `gcloud functions deploy bar --no-gen2 --runtime python311 --trigger-topic bar --retry
// --timeout 540s --memory 512MB --max-instances 1 --set-env-vars A=1` (../shared/reference/gcloud-functions).
json GcloudBody() {
  return json::parse(R"({
    "availableMemoryMb": 512, "dockerRegistry": "ARTIFACT_REGISTRY", "entryPoint": "bar",
    "environmentVariables": {"A": "1"},
    "eventTrigger": {"eventType": "google.pubsub.topic.publish", "failurePolicy": {"retry": {}},
                     "resource": "projects/p/topics/bar"},
    "labels": {"deployment-tool": "cli-gcloud"}, "maxInstances": 1,
    "name": "projects/p/locations/us-central1/functions/bar", "runtime": "python311",
    "sourceUploadUrl": "http://127.0.0.1:1/upload/functions/0123456789abcdef0123456789abcdef.zip",
    "timeout": "540s"})");
}

TEST(CloudFunctionTest, GcloudsDeployBodyIsTheGuidesFunction) {
  auto request = CloudFunctionFromJson(GcloudBody(), kName);
  ASSERT_THAT(request, IsOk());
  FunctionSpec spec = request->spec;
  EXPECT_EQ(request->source_upload_url,
            "http://127.0.0.1:1/upload/functions/0123456789abcdef0123456789abcdef.zip");
  spec.source_dir = "/src";
  ASSERT_THAT(NormalizeFunctionSpec(spec), IsOk());
  EXPECT_EQ(spec.project, "p");
  EXPECT_EQ(spec.region, "us-central1");
  EXPECT_EQ(spec.name, "bar");
  EXPECT_EQ(spec.runtime, "python3");
  EXPECT_EQ(spec.google_runtime, "python311");
  EXPECT_EQ(spec.trigger_type, kPubsubTrigger);
  EXPECT_EQ(spec.trigger_resource, "projects/p/topics/bar");
  EXPECT_TRUE(spec.retry);
  EXPECT_EQ(spec.timeout_seconds, 540);
  EXPECT_EQ(spec.memory_mb, 512);
  EXPECT_EQ(spec.max_instances, 1);
  EXPECT_EQ(spec.env_vars.at("A"), "1");
  EXPECT_EQ(spec.labels.at("deployment-tool"), "cli-gcloud");
  EXPECT_EQ(spec.created_by, kCreatedByFunctionsApi);

  // And back: what describe shows.
  spec.version_id = 3;
  json shown = CloudFunctionToJson(spec, {.base_url = "http://h:1"});
  EXPECT_EQ(shown["runtime"], "python311");
  EXPECT_EQ(shown["timeout"], "540s");
  EXPECT_EQ(shown["versionId"], "3");
  EXPECT_EQ(shown["environmentVariables"]["A"], "(hidden)");
  EXPECT_EQ(shown["eventTrigger"]["failurePolicy"], json({{"retry", json::object()}}));
  EXPECT_EQ(shown["labels"]["deployment-tool"], "cli-gcloud");
}

TEST(CloudFunctionTest, TriggersBucketAndHttp) {
  json bucket = GcloudBody();
  bucket["eventTrigger"] = {{"eventType", "google.storage.object.finalize"}, {"resource", "projects/_/buckets/uploads"}};
  auto request = CloudFunctionFromJson(bucket, kName);
  ASSERT_THAT(request, IsOk());
  request->spec.source_dir = "/src";
  ASSERT_THAT(NormalizeFunctionSpec(request->spec), IsOk());
  EXPECT_EQ(request->spec.trigger_resource, "uploads");

  json http = GcloudBody();
  http.erase("eventTrigger");
  http["httpsTrigger"] = {{"securityLevel", "SECURE_ALWAYS"}};
  request = CloudFunctionFromJson(http, kName);
  ASSERT_THAT(request, IsOk());
  request->spec.source_dir = "/src";
  ASSERT_THAT(NormalizeFunctionSpec(request->spec), IsOk());
  EXPECT_EQ(request->spec.signature, "http");
  json shown = CloudFunctionToJson(request->spec, {.base_url = "http://h:1"});
  EXPECT_EQ(shown["httpsTrigger"]["url"], "http://h:1/projects/p/locations/us-central1/functions/bar");
}

TEST(CloudFunctionTest, WhatFerryCannotRunIsRefusedInGooglesWords) {
  auto refused = [](json body) { return CloudFunctionFromJson(body, kName).status(); };
  json body = GcloudBody();
  body["runtime"] = "go121";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("Unknown runtime \"go121\"")));
  body = GcloudBody();
  body["surprise"] = 1;
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("Unknown name \"surprise\"")));
  body = GcloudBody();
  body["eventTrigger"]["eventType"] = "providers/cloud.firestore/eventTypes/document.write";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("does not trigger functions")));
  body = GcloudBody();
  body["timeout"] = "soon";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("function.timeout")));
  body = GcloudBody();
  body["maxInstances"] = "many";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("max_instances")));
  body = GcloudBody();
  body["name"] = "projects/p/locations/us-central1/functions/other";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("does not match")));
  body = GcloudBody();
  body["httpsTrigger"] = json::object();
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("one trigger")));
  body = GcloudBody();
  body.erase("sourceUploadUrl");
  body["sourceArchiveUrl"] = "gs://b/x.zip";
  EXPECT_THAT(refused(body), StatusIs(StatusCode::kInvalidArgument, HasSubstr("upload")));
  // Labels follow Google's rules (checked with the rest of the function).
  body = GcloudBody();
  body["labels"] = {{"Bad Key", "x"}};
  auto request = CloudFunctionFromJson(body, kName);
  ASSERT_THAT(request, IsOk());
  request->spec.source_dir = "/src";
  EXPECT_THAT(NormalizeFunctionSpec(request->spec), StatusIs(StatusCode::kInvalidArgument, HasSubstr("label")));
}

TEST(CloudFunctionTest, RuntimesByGooglesNames) {
  EXPECT_EQ(FerryRuntime("python37"), "python3");
  EXPECT_EQ(FerryRuntime("python312"), "python3");
  EXPECT_EQ(FerryRuntime("nodejs22"), "nodejs");
  EXPECT_EQ(FerryRuntime("nodejs8"), "");
  EXPECT_EQ(FerryRuntime("python2"), "");
  EXPECT_EQ(FerryRuntime("python3011"), "");
  EXPECT_EQ(FerryRuntime("go121"), "");
}

}  // namespace
}  // namespace ferry
