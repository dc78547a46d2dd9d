#include "control/deploy_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/json_codec.h"
#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int64_t kNow = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
constexpr char kBarName[] = "projects/p/locations/local/functions/bar";
constexpr char kBarSub[] = "projects/p/subscriptions/gcf-bar-local-bar";

// The walkthrough's function: topic bar, retry on, dead letters to bar-failed after 6 attempts.
FunctionSpec Bar() {
  FunctionSpec fn;
  fn.project = "p";
  fn.name = "bar";
  fn.runtime = "cpp";
  fn.source_dir = "/src";
  fn.trigger_type = kPubsubTrigger;
  fn.trigger_resource = "bar";
  fn.retry = true;
  fn.dead_letter_topic = "bar-failed";
  fn.max_delivery_attempts = 6;
  fn.min_retry_delay_ms = 120'000;
  fn.max_instances = 1;
  fn.memory_mb = 512;
  fn.timeout_seconds = 540;
  EXPECT_THAT(NormalizeFunctionSpec(fn), IsOk());
  return fn;
}

ScheduleSpec Nightly() {
  ScheduleSpec s;
  s.project = "p";
  s.name = "nightly";
  s.schedule = "0 3 * * *";
  s.topic = "projects/p/topics/bar";
  s.data = "{}";
  EXPECT_THAT(NormalizeScheduleSpec(s), IsOk());
  return s;
}

DeployRequest Request() {
  DeployRequest r;
  r.project = "p";
  r.functions = {Bar()};
  return r;
}

// The state that applying `plan` to `state` leaves, with every launched function running.
DeployedState Applied(DeployedState state, DeployPlan const& plan) {
  for (auto const& t : plan.change.create_topics) state.topics.insert(t.name);
  for (auto const& name : plan.change.delete_subscriptions) state.subscriptions.erase(name);
  for (auto const& s : plan.change.create_subscriptions) state.subscriptions[s.name] = s;
  for (auto const& s : plan.change.update_subscriptions) state.subscriptions[s.name] = s;
  std::erase_if(state.functions, [&](FunctionSpec const& f) {
    auto const& gone = plan.change.delete_functions;
    return std::find(gone.begin(), gone.end(), FunctionResourceName(f)) != gone.end();
  });
  for (auto const& fn : plan.to_launch) {
    std::erase_if(state.functions, [&](FunctionSpec const& f) { return f.name == fn.name; });
    state.functions.push_back(fn);
    state.running.insert(FunctionResourceName(fn));
  }
  for (auto const& s : plan.change.put_schedules) state.schedules.push_back(s);
  for (auto const& b : plan.change.put_buckets) state.buckets.push_back(b);
  return state;
}

TEST(DeployPlanTest, TheWalkthroughsFirstDeployCreatesEverything) {
  auto plan = PlanDeploy(Request(), {}, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->items, ElementsAre(PlanItem{"create", "topic", "projects/p/topics/bar"},
                                       PlanItem{"create", "topic", "projects/p/topics/bar-failed"},
                                       PlanItem{"create", "subscription",
                                                "projects/p/subscriptions/ferry-dead-letters-bar-failed"},
                                       PlanItem{"create", "subscription", kBarSub},
                                       PlanItem{"create", "function", kBarName}));
  ASSERT_THAT(plan->change.create_subscriptions, SizeIs(2));
  // The dead-letter topic's subscription keeps what the function gives up on, for `ferry dead-letter`.
  EXPECT_EQ(plan->change.create_subscriptions[0].topic, "projects/p/topics/bar-failed");
  EXPECT_FALSE(plan->change.create_subscriptions[0].dead_letter_policy);
  auto const& sub = plan->change.create_subscriptions[1];
  EXPECT_EQ(sub.dead_letter_policy->dead_letter_topic, "projects/p/topics/bar-failed");
  EXPECT_EQ(sub.dead_letter_policy->max_delivery_attempts, 6);
  EXPECT_EQ(sub.retry_policy->minimum_backoff_ms, 120'000);
  ASSERT_THAT(plan->to_launch, SizeIs(1));
  EXPECT_THAT(plan->to_stop, IsEmpty());
}

TEST(DeployPlanTest, TheSameDeployAgainChangesNothing) {
  auto first = PlanDeploy(Request(), {}, kNow);
  ASSERT_THAT(first, IsOk());
  auto again = PlanDeploy(Request(), Applied({}, *first), kNow);
  ASSERT_THAT(again, IsOk());
  for (auto const& item : again->items) EXPECT_EQ(item.action, "unchanged") << item.kind << " " << item.name;
  EXPECT_THAT(again->change.put_functions, IsEmpty());
  EXPECT_THAT(again->change.create_subscriptions, IsEmpty());
  EXPECT_THAT(again->to_launch, IsEmpty());
}

TEST(DeployPlanTest, AnUnchangedFunctionThatIsNotRunningIsStartedAgain) {
  auto first = PlanDeploy(Request(), {}, kNow);
  auto state = Applied({}, *first);
  state.running.clear();
  auto again = PlanDeploy(Request(), state, kNow);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(again->to_launch, SizeIs(1));
  EXPECT_THAT(again->to_stop, IsEmpty());
}

TEST(DeployPlanTest, ChangedRetrySettingsChangeOnlyTheTriggersPartOfTheSubscription) {
  auto state = Applied({}, *PlanDeploy(Request(), {}, kNow));
  state.subscriptions[kBarSub].filter = "attributes.kind = \"a\"";  // set by a user with gcloud
  auto request = Request();
  request.functions[0].max_delivery_attempts = 10;
  auto plan = PlanDeploy(request, state, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->items, ::testing::Contains(PlanItem{"change", "subscription", kBarSub}));
  EXPECT_THAT(plan->items, ::testing::Contains(PlanItem{"change", "function", kBarName}));
  ASSERT_THAT(plan->change.update_subscriptions, SizeIs(1));
  EXPECT_EQ(plan->change.update_subscriptions[0].dead_letter_policy->max_delivery_attempts, 10);
  EXPECT_EQ(plan->change.update_subscriptions[0].filter, "attributes.kind = \"a\"");
  EXPECT_THAT(plan->to_stop, ElementsAre(kBarName));
  EXPECT_THAT(plan->to_launch, SizeIs(1));
}

TEST(DeployPlanTest, AFunctionMovedToAnotherTopicGetsANewSubscription) {
  auto state = Applied({}, *PlanDeploy(Request(), {}, kNow));
  auto request = Request();
  request.functions[0].trigger_resource = "projects/p/topics/baz";
  auto plan = PlanDeploy(request, state, kNow);
  ASSERT_THAT(plan, IsOk());
  std::string new_sub = "projects/p/subscriptions/gcf-bar-local-baz";
  EXPECT_THAT(plan->change.create_subscriptions, SizeIs(1));
  EXPECT_EQ(plan->change.create_subscriptions[0].name, new_sub);
  EXPECT_THAT(plan->change.delete_subscriptions, ElementsAre(kBarSub));
  EXPECT_THAT(plan->change.create_topics, SizeIs(1));
}

TEST(DeployPlanTest, WhatTheDeployLeavesOutIsDeleted) {
  auto request = Request();
  request.schedules = {Nightly()};
  auto state = Applied({}, *PlanDeploy(request, {}, kNow));
  // Another project's schedule is not this deploy's to delete.
  state.schedules.push_back({"projects/q/locations/local/jobs/other", "{}", kNow, 0, false});
  DeployRequest empty;
  empty.project = "p";
  auto plan = PlanDeploy(empty, state, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->change.delete_functions, ElementsAre(kBarName));
  // The trigger's subscription, not the dead-letter one: that may hold messages to redrive.
  EXPECT_THAT(plan->change.delete_subscriptions, ElementsAre(kBarSub));
  EXPECT_THAT(plan->change.delete_schedules, ElementsAre("projects/p/locations/local/jobs/nightly"));
  EXPECT_THAT(plan->to_stop, ElementsAre(kBarName));
  EXPECT_THAT(plan->change.create_topics, IsEmpty());  // topics stay: they may hold messages
}

TEST(DeployPlanTest, ANewOrChangedScheduleStartsAtItsNextTickAfterNow) {
  auto request = Request();
  request.schedules = {Nightly()};
  auto plan = PlanDeploy(request, {}, kNow);
  ASSERT_THAT(plan, IsOk());
  ASSERT_THAT(plan->change.put_schedules, SizeIs(1));
  EXPECT_EQ(plan->change.put_schedules[0].next_fire_ms, kNow + 19 * 3'600'000);  // 03:00 the next day
  auto state = Applied({}, *plan);
  EXPECT_THAT(PlanDeploy(request, state, kNow)->change.put_schedules, IsEmpty());
  request.schedules[0].schedule = "0 9 * * *";
  auto changed = PlanDeploy(request, state, kNow);
  ASSERT_THAT(changed, IsOk());
  EXPECT_THAT(changed->items,
              ::testing::Contains(PlanItem{"change", "schedule", "projects/p/locations/local/jobs/nightly"}));
  EXPECT_EQ(changed->change.put_schedules[0].next_fire_ms, kNow + 3'600'000);
}

// A job made with gcloud scheduler (the Cloud Scheduler API) is not the deploy file's: a deploy that leaves it out
// keeps it, and one that declares it is refused whole, naming it.
TEST(DeployPlanTest, AJobMadeThroughTheSchedulerApiIsNotTheDeployFiles) {
  ScheduleSpec api = Nightly();
  api.name = "from-gcloud";
  api.created_by = kCreatedByApi;
  DeployedState state;
  state.schedules.push_back({ScheduleResourceName(api), SafeDump(ScheduleSpecToJson(api)), kNow, 0, false});
  DeployRequest empty;
  empty.project = "p";
  auto plan = PlanDeploy(empty, state, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->change.delete_schedules, IsEmpty());
  EXPECT_THAT(plan->items, IsEmpty());

  auto request = Request();
  ScheduleSpec mine = Nightly();
  mine.name = "from-gcloud";
  request.schedules = {mine};
  auto refused = PlanDeploy(request, state, kNow);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("projects/p/locations/local/jobs/from-gcloud was "
                                                               "created with gcloud scheduler"));
}

// A function as gcloud functions deploy makes it: Bar's settings, no dead-letter topic (CloudFunction has none).
FunctionSpec FromGcloud(std::string const& name) {
  FunctionSpec fn = Bar();
  fn.name = name;
  fn.dead_letter_topic.clear();
  fn.created_by = kCreatedByFunctionsApi;
  return fn;
}

// The deploy of that one function alone, as the Cloud Functions API makes it.
DeployRequest OneFunction(FunctionSpec const& fn) {
  DeployRequest one;
  one.project = "p";
  one.prune = false;
  one.functions = {fn};
  return one;
}

// gcloud functions deploy (the Cloud Functions API) deploys one function: nothing else is deleted, a deploy file's
// function is not taken over, and a deploy file in turn neither deletes nor takes over gcloud's.
TEST(DeployPlanTest, AFunctionDeployedWithGcloudAndADeployFileKeepToTheirOwn) {
  auto state = Applied({}, *PlanDeploy(Request(), {}, kNow));  // bar, from a deploy file
  FunctionSpec web = FromGcloud("web");
  DeployRequest one = OneFunction(web);
  auto plan = PlanDeploy(one, state, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->change.delete_functions, IsEmpty()) << "a deploy of one function deletes nothing";
  EXPECT_THAT(plan->change.delete_subscriptions, IsEmpty());
  ASSERT_THAT(plan->to_launch, SizeIs(1));
  state = Applied(state, *plan);

  // A deploy file that leaves gcloud's function out keeps it, and its subscription.
  auto again = PlanDeploy(Request(), state, kNow);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(again->change.delete_functions, IsEmpty());
  EXPECT_THAT(again->change.delete_subscriptions, IsEmpty());
  // One that declares it is refused whole, naming it.
  auto request = Request();
  FunctionSpec mine = web;
  mine.created_by.clear();
  request.functions.push_back(mine);
  auto refused = PlanDeploy(request, state, kNow);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("deployed with gcloud functions deploy"));
  // And gcloud cannot take over the deploy file's bar.
  FunctionSpec theirs = Bar();
  theirs.created_by = kCreatedByFunctionsApi;
  one.functions = {theirs};
  refused = PlanDeploy(one, state, kNow);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("belongs to a deploy file"));
}

// versionId counts the changes of a function (Cloud Functions' versionId); an unchanged redeploy keeps it.
TEST(DeployPlanTest, AChangeCountsAVersionAndTakesTheTime) {
  auto first = PlanDeploy(Request(), {}, kNow);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(first->to_launch, SizeIs(1));
  EXPECT_EQ(first->to_launch[0].version_id, 1);
  EXPECT_EQ(first->to_launch[0].update_time_ms, kNow);
  auto state = Applied({}, *first);
  state.running.clear();  // put again, as not running: its version stays
  auto same = PlanDeploy(Request(), state, kNow + 1000);
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ(same->to_launch[0].version_id, 1);
  EXPECT_EQ(same->to_launch[0].update_time_ms, kNow);
  auto changed_request = Request();
  changed_request.functions[0].timeout_seconds = 60;
  auto changed = PlanDeploy(changed_request, state, kNow + 2000);
  ASSERT_THAT(changed, IsOk());
  EXPECT_EQ(changed->items.back(), (PlanItem{"change", "function", kBarName}));
  EXPECT_EQ(changed->to_launch[0].version_id, 2);
  EXPECT_EQ(changed->to_launch[0].update_time_ms, kNow + 2000);
}

// The guide sets the dead-letter policy on a gcloud-deployed function's subscription after each deploy; the next
// deploy of the function keeps it (the CloudFunction resource has no such setting to replace it with).
TEST(DeployPlanTest, AGcloudFunctionsRedeployKeepsItsSubscriptionsPolicies) {
  DeployRequest one = OneFunction(FromGcloud("bar"));
  auto state = Applied({}, *PlanDeploy(one, {}, kNow));
  Subscription& sub = state.subscriptions[kBarSub];
  sub.dead_letter_policy = DeadLetterPolicy{"projects/p/topics/bar-failed", 6};
  sub.retry_policy = RetryPolicy{120'000, 600'000};
  one.functions[0].timeout_seconds = 60;
  auto plan = PlanDeploy(one, state, kNow);
  ASSERT_THAT(plan, IsOk());
  ASSERT_THAT(plan->change.update_subscriptions, SizeIs(1));
  auto const& updated = plan->change.update_subscriptions[0];
  EXPECT_EQ(updated.ack_deadline_seconds, 90);
  ASSERT_TRUE(updated.dead_letter_policy);
  EXPECT_EQ(updated.dead_letter_policy->max_delivery_attempts, 6);
  EXPECT_EQ(updated.retry_policy->minimum_backoff_ms, 120'000);
}

TEST(DeployPlanTest, ABucketNameIsOneProjectsOnly) {
  DeployRequest request;
  request.project = "p";
  request.buckets = {{"uploads", "p", "/srv/uploads", false}};
  DeployedState state;
  state.buckets = {{"uploads", "q", "/srv/q-uploads", false}};
  EXPECT_THAT(PlanDeploy(request, state, kNow), StatusIs(StatusCode::kAlreadyExists));
  state.buckets = {{"uploads", "p", "/srv/old", false}};
  auto plan = PlanDeploy(request, state, kNow);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(plan->items, ElementsAre(PlanItem{"create", "topic", "projects/p/topics/ferry-storage-uploads"},
                                       PlanItem{"change", "bucket", "uploads"}));
}

}  // namespace
}  // namespace ferry
