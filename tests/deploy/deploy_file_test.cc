#include "deploy/deploy_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::StatusIs;
using ::testing::HasSubstr;

StatusOr<DeployRequest> Parse(std::string const& text) { return ParseDeployText(text, "/work/ferry.yaml", "dflt"); }

// The message of the INVALID_ARGUMENT the text gets ("" and a failure when it gets anything else).
std::string Refusal(std::string const& text) {
  auto request = Parse(text);
  EXPECT_THAT(request, StatusIs(StatusCode::kInvalidArgument));
  return request.ok() ? "" : request.status().message();
}

std::string WithSetting(std::string const& line) {
  return "project: p\nfunctions:\n  - name: f\n    runtime: command\n    command: [x]\n    " + line + "\n";
}

TEST(DeployFileTest, TheWalkthroughFunction) {
  auto request = Parse(R"(project: my-project
topics: [bar, bar-failed]
functions:
  - name: bar
    runtime: command
    command: [/bin/true]
    entry_point: bar
    event_trigger_type: google.pubsub.topic.publish
    event_trigger_resource: bar
    event_trigger_retry: true
    dead_letter_topic: bar-failed
    max_delivery_attempts: 6
    min_retry_delay: 2m
    max_instances: 1
    memory: 512MB
    timeout: 540s
)");
  ASSERT_TRUE(request.ok()) << request.status().message();
  ASSERT_EQ(request->functions.size(), 1u);
  auto const& f = request->functions[0];
  EXPECT_EQ(f.memory_mb, 512);
  EXPECT_EQ(f.timeout_seconds, 540);
  EXPECT_EQ(f.max_instances, 1);
  EXPECT_EQ(request->topics.size(), 2u);
}

TEST(DeployFileTest, SizesAndNumbersOutOfRangeAreErrorsWithTheirPlace) {
  // These threw std::out_of_range out of the reader before (found while writing the deploy_file fuzz target).
  EXPECT_THAT(Refusal(WithSetting("memory: 99999999999999999999999MB")), HasSubstr("/work/ferry.yaml:6:"));
  EXPECT_THAT(Refusal(WithSetting("max_instances: 99999999999999999999999")), HasSubstr("out of range"));
  EXPECT_THAT(Refusal(WithSetting("memory: 12XB")), HasSubstr("must be a size"));
  EXPECT_THAT(Refusal(WithSetting("max_instances: +3")), HasSubstr("whole number"));
}

TEST(DeployFileTest, DeepNestingIsRefusedNotRecursedInto) {
  (void)Refusal("project: p\nfunctions: " + std::string(50000, '['));
  std::string deep = "a: ";
  for (int i = 0; i < 20000; ++i) deep += "{a: ";
  (void)Refusal(deep);
}

}  // namespace
}  // namespace ferry
