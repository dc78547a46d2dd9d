#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

inline constexpr char kPubsubTrigger[] = "google.pubsub.topic.publish";
inline constexpr char kHttpTrigger[] = "http";
// Cloud Storage triggers: event_trigger_resource names a bucket (a directory, see storage/bucket_service.h).
bool IsStorageTrigger(std::string const& trigger_type);
// Cloud Functions' rule: a letter first, then letters, digits, '-' and '_', at most 63 characters. Ferry's
// schedule (job) ids follow it too.
bool IsValidFunctionName(std::string_view name);
// The internal topic that carries a bucket's events: "projects/{p}/topics/ferry-storage-{bucket}".
std::string StorageEventsTopic(std::string const& project, std::string const& bucket);
inline constexpr int kDefaultFunctionTimeoutSeconds = 60;
inline constexpr int kMaxEventFunctionTimeoutSeconds = 540;
inline constexpr int kMaxHttpFunctionTimeoutSeconds = 3600;
inline constexpr int kDefaultMaxInstances = 10;
inline constexpr int64_t kDefaultMemoryMb = 256;
inline constexpr char kDefaultRegion[] = "local";
// FunctionSpec::created_by of a function deployed through the Cloud Functions API (gcloud functions deploy).
inline constexpr char kCreatedByFunctionsApi[] = "cloudfunctions-api";

// A deployed function as the deploy file declares it (PRODUCT.md sections 3 and 8), with names made full.
struct FunctionSpec {
  std::string project;
  std::string name;                 // the short id: "bar"
  std::string region = kDefaultRegion;
  std::string entry_point;          // FUNCTION_TARGET; defaults to the name
  std::string runtime;              // cpp, command, nodejs, python3
  std::string source_dir;           // absolute
  std::vector<std::string> command; // runtime: command; argv, run in source_dir
  Attributes env_vars;
  Attributes build_environment_variables;
  std::string signature = "event";  // event, cloudevent or http
  std::string trigger_type;         // kPubsubTrigger or kHttpTrigger
  std::string trigger_resource;     // a full topic name for Pub/Sub triggers
  bool retry = false;               // event_trigger_retry
  std::string dead_letter_topic;    // a full topic name, or empty
  int max_delivery_attempts = kDefaultMaxDeliveryAttempts;
  int64_t min_retry_delay_ms = kDefaultMinimumBackoffMillis;
  int64_t max_retry_delay_ms = kDefaultMaximumBackoffMillis;
  int max_instances = kDefaultMaxInstances;
  int min_instances = 0;
  int concurrency = 1;
  int64_t memory_mb = kDefaultMemoryMb;
  int timeout_seconds = kDefaultFunctionTimeoutSeconds;
  bool allow_unauthenticated = false;
  // Where its failed executions are reported (a Sentry DSN); empty: ferry serve --sentry-dsn, if any.
  std::string sentry_dsn;
  // Set by the daemon at deploy: a digest of source_dir's files and the build settings. A change in it is a
  // change of the function, so deploy rebuilds and restarts it.
  std::string source_hash;
  // Cloud Functions' labels (gcloud adds deployment-tool: cli-gcloud); at most 64, Google's key and value rules.
  Attributes labels;
  // Who manages it: "" for a deploy file (ferry deploy creates, changes and deletes it), kCreatedByFunctionsApi for
  // gcloud functions deploy (a deploy file neither deletes nor takes it over; docs/gcloud.md).
  std::string created_by;
  // The runtime as Cloud Functions names it ("python311", "nodejs20") when it was given so; describe shows it.
  std::string google_runtime;
  // Settings of Cloud Functions (the deploy-cloud-functions action's inputs) that mean nothing on Ferry, such as
  // vpc_connector or service_account_email: accepted and kept as given, so describe shows them; the plan says
  // they have no effect here.
  Attributes no_effect;
  // Bookkeeping the deploy plan sets, not part of what a function is (SameFunction ignores them): 1 when created,
  // one more at each change (Cloud Functions' versionId), and the time of that change.
  int64_t version_id = 0;
  int64_t update_time_ms = 0;

  friend bool operator==(FunctionSpec const&, FunctionSpec const&) = default;
};

// Equal but for the deploy's bookkeeping (version_id, update_time_ms): whether a deploy changes the function.
bool SameFunction(FunctionSpec a, FunctionSpec b);
// Cloud Functions' runtime names (python37 ... python313, nodejs10 ... nodejs22) as Ferry's runtime (python3,
// nodejs); Ferry's own names as themselves; "" for anything else.
std::string FerryRuntime(std::string const& google_runtime);

// "projects/{p}/locations/{region}/functions/{name}".
std::string FunctionResourceName(FunctionSpec const& spec);
// The topic a function's trigger consumes: its Pub/Sub topic, or its bucket's events topic; "" for HTTP.
std::string TriggerTopic(FunctionSpec const& spec);
// The subscription a Pub/Sub-triggered function consumes, named as Cloud Functions names it:
// "projects/{p}/subscriptions/gcf-{name}-{region}-{topic id}".
std::string TriggerSubscriptionName(FunctionSpec const& spec);
// That subscription's settings: ack deadline covering the timeout, retry policy, dead-letter policy.
Subscription TriggerSubscription(FunctionSpec const& spec);

// The JSON form, with the deploy file's key names. Durations in the JSON are milliseconds under "*_ms" keys.
nlohmann::json FunctionSpecToJson(FunctionSpec const& spec);
// Strict: an unknown key or a wrong type is INVALID_ARGUMENT naming it. Does not validate values.
StatusOr<FunctionSpec> FunctionSpecFromJson(nlohmann::json const& json);

// Fills defaults (entry point, short topic names made full) and checks every value against its range, with
// messages that name the setting. Does not look at the file system.
Status NormalizeFunctionSpec(FunctionSpec& spec);

}  // namespace ferry
