#include "control/deploy_plan.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "broker/dead_letters.h"
#include "common/status_macros.h"
#include "control/scheduler.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

// The settings that decide a function's trigger subscription, to tell whether it needs an update.
bool SameTriggerSubscription(Subscription const& a, Subscription const& b) {
  auto dlp = [](Subscription const& s) {
    return s.dead_letter_policy ? s.dead_letter_policy->dead_letter_topic + "/" +
                                      std::to_string(s.dead_letter_policy->max_delivery_attempts)
                                : std::string();
  };
  auto retry = [](Subscription const& s) {
    return s.retry_policy ? std::to_string(s.retry_policy->minimum_backoff_ms) + "/" +
                                std::to_string(s.retry_policy->maximum_backoff_ms)
                          : std::string();
  };
  return a.topic == b.topic && a.ack_deadline_seconds == b.ack_deadline_seconds && dlp(a) == dlp(b) &&
         retry(a) == retry(b) && a.labels == b.labels;
}

}  // namespace

std::vector<std::string> WantedTopics(DeployRequest const& request) {
  std::vector<std::string> topics;
  auto want = [&](std::string const& name) {
    if (std::find(topics.begin(), topics.end(), name) == topics.end()) topics.push_back(name);
  };
  for (auto const& t : request.topics) {
    want(t.rfind("projects/", 0) == 0 ? t : MakeResourceName(request.project, ResourceKind::kTopic, t));
  }
  for (auto const& fn : request.functions) {
    if (!TriggerTopic(fn).empty()) want(TriggerTopic(fn));
    if (!fn.dead_letter_topic.empty()) want(fn.dead_letter_topic);
  }
  for (auto const& s : request.schedules) {
    if (!s.topic.empty()) want(s.topic);
  }
  for (auto const& b : request.buckets) want(StorageEventsTopic(request.project, b.name));
  return topics;
}

std::vector<std::string> TriggerSubscriptionsOf(DeployRequest const& request, std::vector<FunctionSpec> const& stored) {
  std::vector<std::string> names;
  for (auto const* specs : {&request.functions, &stored}) {
    for (auto const& fn : *specs) {
      if (!TriggerTopic(fn).empty()) names.push_back(TriggerSubscriptionName(fn));
    }
  }
  for (auto const& fn : request.functions) {
    if (!fn.dead_letter_topic.empty()) names.push_back(DeadLetterSubscriptionName(fn.dead_letter_topic));
  }
  return names;
}

StatusOr<DeployPlan> PlanDeploy(DeployRequest const& request, DeployedState const& state, int64_t now_ms) {
  DeployPlan plan;
  auto& items = plan.items;
  auto& change = plan.change;

  for (auto const& topic : WantedTopics(request)) {
    if (state.topics.contains(topic)) {
      items.push_back({"unchanged", "topic", topic});
    } else {
      items.push_back({"create", "topic", topic});
      change.create_topics.push_back({.name = topic});
    }
  }

  // Functions, and the subscriptions that trigger them.
  std::map<std::string, FunctionSpec const*> old;
  for (auto const& spec : state.functions) old[FunctionResourceName(spec)] = &spec;
  std::set<std::string> declared;
  for (auto const& fn : request.functions) declared.insert(fn.name);
  std::set<std::string> subs_kept;  // trigger subscriptions of the new state
  auto plan_subscription = [&](FunctionSpec const& fn) {
    Subscription sub = TriggerSubscription(fn);
    subs_kept.insert(sub.name);
    auto existing = state.subscriptions.find(sub.name);
    if (existing == state.subscriptions.end()) {
      items.push_back({"create", "subscription", sub.name});
      change.create_subscriptions.push_back(sub);
    } else if (existing->second.topic != sub.topic) {
      items.push_back({"delete", "subscription", sub.name});
      change.delete_subscriptions.push_back(sub.name);
      items.push_back({"create", "subscription", sub.name});
      change.create_subscriptions.push_back(sub);
    } else if (fn.created_by == kCreatedByFunctionsApi) {
      // A Cloud Functions function declares no retry or dead-letter policy: what the user set on its subscription
      // (gcloud pubsub subscriptions update, as the guide does after each deploy) stays.
      Subscription updated = existing->second;
      updated.ack_deadline_seconds = sub.ack_deadline_seconds;
      updated.labels = sub.labels;
      if (updated.ack_deadline_seconds != existing->second.ack_deadline_seconds ||
          updated.labels != existing->second.labels) {
        items.push_back({"change", "subscription", sub.name});
        change.update_subscriptions.push_back(updated);
      }
    } else if (!SameTriggerSubscription(existing->second, sub)) {
      // Keep what a user may have set on it otherwise (filters, retention): change only the trigger's part.
      Subscription updated = existing->second;
      updated.ack_deadline_seconds = sub.ack_deadline_seconds;
      updated.retry_policy = sub.retry_policy;
      updated.dead_letter_policy = sub.dead_letter_policy;
      updated.labels = sub.labels;
      items.push_back({"change", "subscription", sub.name});
      change.update_subscriptions.push_back(updated);
    }
  };
  // Each dead-letter topic gets a subscription that keeps its messages for `ferry dead-letter` (a topic without one
  // drops what is published to it). Never deleted by a deploy: it may hold messages to redrive.
  std::set<std::string> dead_letter_subs;
  for (auto const& fn : request.functions) {
    if (fn.dead_letter_topic.empty()) continue;
    std::string name = DeadLetterSubscriptionName(fn.dead_letter_topic);
    if (name.empty() || !dead_letter_subs.insert(name).second || state.subscriptions.contains(name)) continue;
    items.push_back({"create", "subscription", name});
    change.create_subscriptions.push_back(Subscription{.name = name, .topic = fn.dead_letter_topic});
  }
  // Functions made through the Cloud Functions API (gcloud functions deploy) are not a deploy file's, and a deploy
  // file's are not gcloud's: neither kind of deploy deletes or takes over the other's (docs/gcloud.md).
  for (auto const& fn : request.functions) {
    for (auto const& spec : state.functions) {
      if (spec.name != fn.name || (spec.created_by == kCreatedByFunctionsApi) == (fn.created_by == kCreatedByFunctionsApi)) {
        continue;
      }
      if (spec.created_by == kCreatedByFunctionsApi) {
        return FailedPreconditionError("function " + FunctionResourceName(spec) + " was deployed with gcloud " +
                                       "functions deploy (the Cloud Functions API), not by a deploy file: delete " +
                                       "it there first, or give the deploy file's function another name");
      }
      return FailedPreconditionError("function " + FunctionResourceName(spec) + " belongs to a deploy file: " +
                                     "change or delete it there (ferry deploy), or deploy this one under another name");
    }
    if (request.prune) continue;
    for (auto const& spec : state.functions) {
      if (spec.name == fn.name && spec.region != fn.region) {
        return FailedPreconditionError("function " + fn.name + " already exists in region " + spec.region +
                                       ": a function's id is unique in its project on Ferry");
      }
    }
  }
  for (auto const& fn : request.functions) {
    std::string name = FunctionResourceName(fn);
    auto it = old.find(name);
    if (!TriggerTopic(fn).empty()) plan_subscription(fn);
    FunctionSpec put = fn;
    if (it == old.end()) {
      items.push_back({"create", "function", name});
      put.version_id = 1;
      put.update_time_ms = now_ms;
    } else if (!SameFunction(*it->second, fn)) {
      items.push_back({"change", "function", name});
      plan.to_stop.push_back(name);
      put.version_id = std::max<int64_t>(it->second->version_id, 1) + 1;
      put.update_time_ms = now_ms;
    } else {
      items.push_back({"unchanged", "function", name});
      put.version_id = it->second->version_id;
      put.update_time_ms = it->second->update_time_ms;
      if (state.running.contains(name)) continue;  // running as deployed
    }
    change.put_functions.push_back({name, SafeDump(FunctionSpecToJson(put))});
    plan.to_launch.push_back(std::move(put));
  }
  if (!request.prune) return plan;  // deletes nothing; schedules and buckets stay as they are
  for (auto const& [name, spec] : old) {
    if (declared.contains(spec->name) || spec->created_by == kCreatedByFunctionsApi) continue;
    items.push_back({"delete", "function", name});
    change.delete_functions.push_back(name);
    plan.to_stop.push_back(name);
  }
  // Trigger subscriptions of functions that are gone or moved to another topic go too.
  for (auto const& [name, spec] : old) {
    if (TriggerTopic(*spec).empty() || spec->created_by == kCreatedByFunctionsApi) continue;
    std::string sub = TriggerSubscriptionName(*spec);
    if (subs_kept.contains(sub) || !state.subscriptions.contains(sub)) continue;
    items.push_back({"delete", "subscription", sub});
    change.delete_subscriptions.push_back(sub);
  }

  // Schedules: a changed one starts from its next tick after now; one that is gone is deleted.
  std::map<std::string, ScheduleSpec> old_schedules;
  std::string schedule_prefix = "projects/" + request.project + "/";
  for (auto const& r : state.schedules) {
    if (r.name.rfind(schedule_prefix, 0) != 0) continue;
    FERRY_ASSIGN_OR_RETURN(auto spec, ScheduleSpecFromJson(nlohmann::json::parse(r.spec, nullptr, false)));
    old_schedules[r.name] = std::move(spec);
  }
  // Jobs made through the Cloud Scheduler API (gcloud scheduler) are not the deploy file's: a deploy neither
  // deletes them nor takes them over (docs/gcloud.md).
  for (auto it = old_schedules.begin(); it != old_schedules.end();) {
    if (it->second.created_by != kCreatedByApi) {
      ++it;
      continue;
    }
    for (auto const& s : request.schedules) {
      if (ScheduleResourceName(s) == it->first) {
        return FailedPreconditionError("schedule " + it->first + " was created with gcloud scheduler (the Cloud " +
                                       "Scheduler API), not by a deploy file: delete it there first, or give the " +
                                       "deploy file's schedule another name");
      }
    }
    it = old_schedules.erase(it);
  }
  for (auto const& s : request.schedules) {
    std::string name = ScheduleResourceName(s);
    auto it = old_schedules.find(name);
    if (it != old_schedules.end() && it->second == s) {
      items.push_back({"unchanged", "schedule", name});
      old_schedules.erase(it);
      continue;
    }
    items.push_back({it == old_schedules.end() ? "create" : "change", "schedule", name});
    if (it != old_schedules.end()) old_schedules.erase(it);
    change.put_schedules.push_back({name, SafeDump(ScheduleSpecToJson(s)), Scheduler::NextFire(s, now_ms)});
  }
  for (auto const& [name, spec] : old_schedules) {
    items.push_back({"delete", "schedule", name});
    change.delete_schedules.push_back(name);
  }

  // Buckets: names are global, as Cloud Storage's are; one project cannot take over another's.
  std::set<std::string> bucket_names;
  for (auto const& b : request.buckets) bucket_names.insert(b.name);
  std::map<std::string, BucketRecord> old_buckets;
  for (auto const& b : state.buckets) {
    if (b.project == request.project) {
      old_buckets[b.name] = b;
    } else if (bucket_names.contains(b.name)) {
      return AlreadyExistsError("bucket " + b.name + " belongs to project " + b.project);
    }
  }
  for (auto const& b : request.buckets) {
    auto it = old_buckets.find(b.name);
    bool same = it != old_buckets.end() && it->second == b;
    items.push_back({same ? "unchanged" : it == old_buckets.end() ? "create" : "change", "bucket", b.name});
    if (it != old_buckets.end()) old_buckets.erase(it);
    if (!same) change.put_buckets.push_back(b);
  }
  for (auto const& [name, b] : old_buckets) {
    for (auto const& [fname, spec] : old) {
      if (spec->created_by == kCreatedByFunctionsApi && IsStorageTrigger(spec->trigger_type) &&
          spec->trigger_resource == name) {
        return FailedPreconditionError("bucket " + name + " triggers function " + fname + ", deployed with gcloud " +
                                       "functions deploy: delete that function first, or keep the bucket");
      }
    }
    items.push_back({"delete", "bucket", name});  // its files stay
    change.delete_buckets.push_back(name);
  }
  return plan;
}

}  // namespace ferry
