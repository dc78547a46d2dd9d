#include "deploy/deploy_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

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

// The guide's "Deploy Cloud Function - Bar" step, its with: block verbatim with the expressions filled in
// (gcp_env=dev, region=us-central1, base_name=api, FUNCTION_NAME=bar), as a function of a deploy file.
TEST(DeployFileTest, TheDeployActionsInputsAsTheGuideWritesThem) {
  auto request = ParseDeployText(R"(project: peerlogic-api-dev
functions:
  - build_environment_variables: "ALLOWED_HOSTS=localhost ,DJANGO_SECRET_KEY=foo"
    deploy_timeout: 900
    entry_point: bar
    env_vars: "REGION=us-central1,GOOGLE_CLOUD_PROJECT=peerlogic-api-dev"
    event_trigger_resource: projects/peerlogic-api-dev/topics/dev-bar
    event_trigger_retry: true
    event_trigger_type: google.pubsub.topic.publish
    max_instances: 1
    memory_mb: 512
    name: "cf-dev-api-bar"
    project_id: "peerlogic-api-dev"
    region: "us-central1"
    runtime: 'python39'
    source_dir: .
    timeout: 540
    vpc_connector: "projects/peerlogic-api-dev/locations/us-central1/connectors/peerlogic-api-dev"
)", "/tmp/ferry.yaml", "");
  ASSERT_TRUE(request.ok()) << request.status().message();
  ASSERT_EQ(request->functions.size(), 1u);
  auto const& f = request->functions[0];
  EXPECT_EQ(f.name, "cf-dev-api-bar");
  EXPECT_EQ(f.runtime, "python3");
  EXPECT_EQ(f.google_runtime, "python39");
  EXPECT_EQ(f.build_environment_variables, (Attributes{{"ALLOWED_HOSTS", "localhost"}, {"DJANGO_SECRET_KEY", "foo"}}));
  EXPECT_EQ(f.env_vars, (Attributes{{"REGION", "us-central1"}, {"GOOGLE_CLOUD_PROJECT", "peerlogic-api-dev"}}));
  EXPECT_EQ(f.trigger_resource, "projects/peerlogic-api-dev/topics/dev-bar");
  EXPECT_TRUE(f.retry);
  EXPECT_EQ(f.max_instances, 1);
  EXPECT_EQ(f.memory_mb, 512);
  EXPECT_EQ(f.timeout_seconds, 540);
  EXPECT_EQ(f.no_effect, (Attributes{{"deploy_timeout", "900"},
                                     {"vpc_connector", "projects/peerlogic-api-dev/locations/us-central1/connectors/"
                                                       "peerlogic-api-dev"}}));
}

// Each of the action's names and string forms reads as the same function as Ferry's own.
TEST(DeployFileTest, TheActionsAliasesAndStringFormsMeanTheSameFunction) {
  auto with = [](std::string const& settings) {
    auto r = Parse("project: p\nfunctions:\n  - name: f\n    runtime: command\n    command: [x]\n" + settings);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->functions.at(0) : FunctionSpec{};
  };
  auto canonical = with(
      "    env_vars: {A: '1', B: two words}\n"
      "    build_environment_variables: {C: '3'}\n"
      "    labels: {team: core}\n"
      "    max_instances: 3\n    min_instances: 1\n    concurrency: 2\n    timeout: 90\n"
      "    event_trigger_type: google.pubsub.topic.publish\n    event_trigger_resource: projects/p/topics/topic1\n");
  auto aliased = with(
      "    environment_variables: \"A=1,\\n  B = two words \"\n"
      "    build_environment_variables: C=3\n"
      "    labels: team=core\n"
      "    max_instance_count: 3\n    min_instance_count: 1\n    max_instance_request_concurrency: 2\n"
      "    service_timeout: 90s\n"
      "    event_trigger_pubsub_topic: projects/p/topics/topic1\n");
  EXPECT_EQ(canonical.env_vars, (Attributes{{"A", "1"}, {"B", "two words"}}));
  EXPECT_TRUE(SameFunction(canonical, aliased)) << FunctionSpecToJson(aliased).dump();
}

TEST(DeployFileTest, TheActionsListFormKeepsQuotedAndEscapedText) {
  // YAML's single quotes: the backslash reaches the list as it is, and '' is one quote.
  auto r = Parse(WithSetting(R"(env_vars: 'S=" keep ",E=a\,b,# a comment,Q=''x=y'', ,{}')"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->functions[0].env_vars, (Attributes{{"S", " keep "}, {"E", "a,b"}, {"Q", "x=y"}}));
  auto none = Parse(WithSetting("env_vars: '{}'"));
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_TRUE(none->functions[0].env_vars.empty());
}

TEST(DeployFileTest, TheActionsInputsAreRefusedWithTheirPlace) {
  EXPECT_THAT(Refusal(WithSetting("env_vars: \"A=1,JUSTAKEY\"")),
              HasSubstr("/work/ferry.yaml:6:15: function f: env_vars: \"JUSTAKEY\" is not KEY=VALUE"));
  EXPECT_THAT(Refusal(WithSetting("labels: \"=v\"")), HasSubstr(":6:13: function f: labels: \"=v\" has no key"));
  EXPECT_THAT(Refusal(WithSetting("build_environment_variables: 'A=\"1'")), HasSubstr("is not closed"));
  std::string runtime = Refusal("project: p\nfunctions:\n  - name: f\n    runtime: python27\n");
  EXPECT_THAT(runtime, HasSubstr("/work/ferry.yaml:4:14: function f: runtime must be cpp, command, nodejs, python3 "
                                 "or a Cloud Functions runtime"));
  EXPECT_THAT(runtime, HasSubstr("not \"python27\""));
  EXPECT_THAT(Refusal(WithSetting("project_id: other")),
              HasSubstr(":6:17: function f: project_id \"other\" is not the deploy's project \"p\""));
}

constexpr char kWorkflow[] = R"(name: Deploy
env:
  PROJECT: peerlogic-api-${{ needs.setup_environment.outputs.gcp_env }}
jobs:
  deploy_cloud_function_bar:
    env:
      FUNCTION_NAME: bar
    steps:
      - uses: actions/checkout@v3
      - uses: google-github-actions/auth@v0
        with:
          service_account: "sa@${{ secrets.NOT_NEEDED }}"
      - name: Deploy Cloud Function - Bar
        uses: 'google-github-actions/deploy-cloud-functions@v0'
        with:
          entry_point: ${{ env.FUNCTION_NAME }}
          event_trigger_resource: projects/${{ env.PROJECT }}/topics/${{ needs.setup_environment.outputs.gcp_env }}-${{ env.FUNCTION_NAME }}
          event_trigger_type: google.pubsub.topic.publish
          name: "cf-${{ needs.setup_environment.outputs.gcp_env }}-${{ env.FUNCTION_NAME }}"
          project_id: ${{ env.PROJECT }}
          runtime: 'python39'
          source_dir: /
)";

// Only the deploy-cloud-functions steps are read (the auth step's expressions need no value); env.NAME comes from
// the job's env, then the workflow's, whose own expressions are resolved too.
TEST(GithubWorkflowTest, TheDeployStepsWithTheirExpressionsResolved) {
  auto request = ParseGithubWorkflowText(kWorkflow, "/repo/.github/workflows/deploy.yml", "",
                                         {{"needs.setup_environment.outputs.gcp_env", "dev"}});
  ASSERT_TRUE(request.ok()) << request.status().message();
  EXPECT_EQ(request->project, "peerlogic-api-dev");
  EXPECT_FALSE(request->prune);
  EXPECT_EQ(request->topics, std::vector<std::string>{"projects/peerlogic-api-dev/topics/dev-bar"});
  ASSERT_EQ(request->functions.size(), 1u);
  auto const& f = request->functions[0];
  EXPECT_EQ(f.name, "cf-dev-bar");
  EXPECT_EQ(f.entry_point, "bar");
  EXPECT_EQ(f.google_runtime, "python39");
  EXPECT_EQ(f.created_by, kCreatedByFunctionsApi);
}

TEST(GithubWorkflowTest, AnUnresolvedExpressionIsNamedWithItsPlace) {
  auto request = ParseGithubWorkflowText(kWorkflow, "/repo/.github/workflows/deploy.yml", "", {});
  ASSERT_THAT(request, StatusIs(StatusCode::kInvalidArgument));
  // Found in the workflow's env, while resolving the step's project_id.
  EXPECT_THAT(request.status().message(),
              HasSubstr("/repo/.github/workflows/deploy.yml:3:12: unresolved expression "
                        "${{ needs.setup_environment.outputs.gcp_env }}: give its value with --set "
                        "needs.setup_environment.outputs.gcp_env=VALUE"));
  auto loop = ParseGithubWorkflowText(
      "env: {A: '${{ env.B }}', B: '${{ env.A }}'}\njobs:\n  j:\n    steps:\n"
      "      - uses: google-github-actions/deploy-cloud-functions@v1\n        with: {name: '${{ env.A }}'}\n",
      "/w.yml", "p", {});
  EXPECT_THAT(loop, StatusIs(StatusCode::kInvalidArgument, HasSubstr("in a loop")));
  EXPECT_THAT(ParseGithubWorkflowText("jobs: {j: {steps: [{uses: actions/checkout@v3}]}}\n", "/w.yml", "p", {}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no step uses google-github-actions/deploy-cloud-functions@")));
}

// Text that is not UTF-8 never reaches the parser, nor the JSON that carries a deploy to the daemon.
TEST(DeployFileTest, TextThatIsNotUtf8IsRefusedWithItsLine) {
  EXPECT_THAT(Refusal(WithSetting("env_vars: \"A=caf\xe9\"")), HasSubstr("/work/ferry.yaml:6: not valid UTF-8"));
  EXPECT_THAT(ParseGithubWorkflowText("jobs:\n  j: {}\n# \xff\n", "/w.yml", "p", {}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("/w.yml:3: not valid UTF-8")));
}

TEST(GithubWorkflowTest, AValueThatExpandsWithoutEndIsRefused) {
  // Each level names the one below eight times: 8^6 copies of "x" at the top, within the nesting allowed.
  std::string env = "env:\n  L0: x\n";
  for (int i = 1; i <= 6; ++i) {
    env += "  L" + std::to_string(i) + ": '";
    for (int k = 0; k < 8; ++k) env += "${{ env.L" + std::to_string(i - 1) + " }}";
    env += "'\n";
  }
  auto request = ParseGithubWorkflowText(env + "jobs:\n  j:\n    steps:\n"
                                               "      - uses: google-github-actions/deploy-cloud-functions@v1\n"
                                               "        with: {name: f, description: '${{ env.L6 }}'}\n",
                                         "/w.yml", "p", {});
  EXPECT_THAT(request, StatusIs(StatusCode::kInvalidArgument, HasSubstr("expands to more than 64 KiB")));
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
