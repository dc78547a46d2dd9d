#include "control/function_service.h"

#include "common/latency_stages.h"

#include "control/deploy_plan.h"
#include "control/scheduler.h"
#include "functions/runtimes.h"
#include "model/json_codec.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/prometheus.h"
#include "common/status_macros.h"
#include "functions/builder.h"

namespace ferry {
namespace {

// Upper bounds of the execution duration histogram, in seconds (+Inf follows).
constexpr std::array<double, 15> kDurationBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1,      2.5,   5,    10,    60,   300};

std::string FunctionPrefix(std::string const& project) { return "projects/" + project + "/locations/"; }


// How the dispatcher runs a Pub/Sub- or storage-triggered function (`name`: its full name).
PubsubTriggerSpec TriggerOf(FunctionSpec const& spec, std::string const& name) {
  PubsubTriggerSpec trigger;
  trigger.function = name;
  trigger.subscription = TriggerSubscriptionName(spec);
  trigger.topic = spec.trigger_resource;
  if (IsStorageTrigger(spec.trigger_type)) trigger.storage_bucket = spec.trigger_resource;
  trigger.signature = spec.signature;
  trigger.retry = spec.retry;
  trigger.capacity = spec.max_instances * spec.concurrency;
  trigger.ack_deadline_seconds = TriggerSubscription(spec).ack_deadline_seconds;
  return trigger;
}

// The deploy revision: the function's name and a digest of its settings (K_REVISION, Sentry's release).
std::string Revision(FunctionSpec const& spec) {
  return spec.name + "-" + Digest(SafeDump(FunctionSpecToJson(spec))).substr(0, 12);
}

std::string HostName() {
  char name[256] = {};
  return ::gethostname(name, sizeof name - 1) == 0 ? std::string(name) : std::string("ferry");
}

}  // namespace

FunctionService::FunctionService(Store& store, Broker& broker, ExecutionLog& log, Clock& clock,
                                 FunctionServiceOptions options)
    : store_(store),
      broker_(broker),
      log_(log),
      clock_(clock),
      options_(std::move(options)),
      slots_(options_.node.empty() ? nullptr : std::make_unique<ClusterSlots>(store, clock, options_.node)),
      sentry_(log, options_.node.empty() ? HostName() : options_.node),
      supervisor_([this](std::string const& function, InstanceLine line) { OnInstanceLine(function, std::move(line)); },
                  {.io = options_.output_loop, .may_read = [this] { return log_.HasRoomForLines(); }}),
      dispatcher_(broker, supervisor_, clock,
                  [this](ExecutionPhase phase, ExecutionRecord const& record) { OnExecution(phase, record); },
                  slots_.get()) {}

FunctionService::~FunctionService() { Shutdown(); }

void FunctionService::Start() {
  std::lock_guard deploy_lock(deploy_mu_);
  auto records = store_.ListFunctions();
  if (!records.ok()) {
    std::fprintf(stderr, "ferry: cannot load functions: %s\n", records.status().message().c_str());
    return;
  }
  std::vector<std::pair<std::string, FunctionSpec>> specs;
  for (auto const& record : *records) {
    auto spec = FunctionSpecFromJson(nlohmann::json::parse(record.spec, nullptr, false));
    if (!spec.ok()) {
      std::fprintf(stderr, "ferry: cannot load function %s: %s\n", record.name.c_str(),
                   spec.status().message().c_str());
      continue;
    }
    std::lock_guard lock(mu_);
    running_[record.name] = {*spec, "", false};
    specs.emplace_back(record.name, *std::move(spec));
  }
  for (auto const& [name, spec] : specs) BuildAndLaunch(name, spec);
}

void FunctionService::BuildAndLaunch(std::string const& name, FunctionSpec const& spec) {
  auto built = Build(spec);
  Status launched = built.ok() ? Launch(spec, built->executable) : built.status();
  if (!launched.ok()) {
    std::fprintf(stderr, "ferry: function %s cannot run: %s\n", name.c_str(), launched.message().c_str());
    std::lock_guard lock(mu_);
    running_[name] = {spec, launched.message()};
  }
}

void FunctionService::Follow() {
  std::unique_lock deploy_lock(deploy_mu_, std::try_to_lock);
  if (!deploy_lock.owns_lock()) return;
  auto records = store_.ListFunctions();
  if (!records.ok()) return;  // the database is away: what runs keeps running
  std::map<std::string, FunctionSpec> stored;
  for (auto const& record : *records) {
    auto spec = FunctionSpecFromJson(nlohmann::json::parse(record.spec, nullptr, false));
    if (spec.ok()) stored.emplace(record.name, *std::move(spec));
  }
  std::vector<std::string> to_stop;
  std::vector<FunctionSpec> to_launch;
  {
    std::lock_guard lock(mu_);
    for (auto const& [name, r] : running_) {
      auto it = stored.find(name);
      if (it == stored.end() || !(it->second == r.spec)) to_stop.push_back(name);
    }
    for (auto const& [name, spec] : stored) {
      auto r = running_.find(name);
      if (r == running_.end() || !(r->second.spec == spec)) to_launch.push_back(spec);
    }
  }
  for (auto const& name : to_stop) Stop(name);
  for (auto const& spec : to_launch) {
    std::string name = FunctionResourceName(spec);
    {
      std::lock_guard lock(mu_);
      running_[name] = {spec, "", false};
    }
    BuildAndLaunch(name, spec);
  }
  if (!to_launch.empty()) RemoveUnusedVenvs(options_.data_dir, InUseExecutables());
  if (!options_.node.empty()) ReportThisNode();
  // Schedules and buckets: tell their services when another node's deploy changed them.
  auto fingerprint = [](auto const& list, auto const& key) {
    std::string out;
    for (auto const& item : list) out += key(item) + "\n";
    return out;
  };
  if (auto schedules = store_.ListSchedules(); schedules.ok()) {
    std::string now = fingerprint(*schedules, [](ScheduleRecord const& s) {
      return s.name + " " + s.spec + " " + std::to_string(s.next_fire_ms) + (s.paused ? " paused" : "");
    });
    // The first round tells too: a deploy may have come between this node's start and its first round.
    if (now != followed_schedules_ && options_.schedules_changed) options_.schedules_changed();
    followed_schedules_ = now.empty() ? "\n" : now;
  }
  if (auto buckets = store_.ListBuckets(); buckets.ok()) {
    std::string now = fingerprint(*buckets, [](BucketRecord const& b) {
      return b.name + " " + b.path + (b.versioning ? " versioned" : "");
    });
    if (now != followed_buckets_ && options_.buckets_changed) options_.buckets_changed();
    followed_buckets_ = now.empty() ? "\n" : now;
  }
}

void FunctionService::Shutdown() {
  std::lock_guard deploy_lock(deploy_mu_);
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (auto const& [name, r] : running_) names.push_back(name);
  }
  for (auto const& name : names) Stop(name);
}

StatusOr<FunctionService::Built> FunctionService::Build(FunctionSpec const& spec) {
  if (spec.runtime == "nodejs") {
    FERRY_RETURN_IF_ERROR(PrepareNodeFunction(spec.source_dir));
    return Built{};
  }
  if (spec.runtime == "python3") {
    auto prepared = PreparePythonFunction(
        {.source_dir = spec.source_dir, .data_dir = options_.data_dir, .env = spec.build_environment_variables});
    if (!prepared.ok()) return FailedPreconditionError("function " + spec.name + ": " + prepared.status().message());
    if (!prepared->log.empty()) {  // the daemon's log is the deploy's log too
      std::fprintf(stderr, "ferry: function %s: pip install:\n%s", spec.name.c_str(), prepared->log.c_str());
    }
    return Built{prepared->interpreter, prepared->log};
  }
  if (spec.runtime != "cpp") return Built{};
  // One build directory per source directory and build settings, shared by the functions built from it.
  std::string key = spec.source_dir;
  for (auto const& [k, v] : spec.build_environment_variables) key += "\n" + k + "=" + v;
  CppBuildOptions build;
  build.source_dir = spec.source_dir;
  build.build_dir = (std::filesystem::absolute(options_.data_dir) / "builds" / Digest(key)).string();
  build.env = spec.build_environment_variables;
  build.preferred_name = spec.name;
  FERRY_ASSIGN_OR_RETURN(auto built, BuildCppFunction(build));
  return Built{built.executable, ""};
}

std::vector<std::string> FunctionService::InUseExecutables() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto const& [name, r] : running_) {
    if (!r.executable.empty()) out.push_back(r.executable);
  }
  return out;
}

std::vector<std::string> FunctionService::VersionNotes(std::vector<FunctionSpec> const& functions) {
  std::vector<std::string> notes;
  for (auto const& fn : functions) {
    // python311 asks for "3.11", nodejs20 for "20".
    std::string_view prefix = fn.runtime == "python3" ? "python3" : fn.runtime == "nodejs" ? "nodejs" : "";
    if (prefix.empty() || fn.google_runtime.size() <= prefix.size() || fn.google_runtime.rfind(prefix, 0) != 0) continue;
    std::string asked = fn.google_runtime.substr(prefix.size());
    if (fn.runtime == "python3") asked = "3." + asked;
    std::string installed = InstalledVersion(fn.runtime);
    if (installed.empty() || installed == asked) continue;
    notes.push_back("function " + fn.name + ": " + fn.google_runtime + " asks for " +
                    (fn.runtime == "python3" ? "Python " : "Node.js ") + asked + "; it runs on the installed " +
                    installed + " here");
  }
  return notes;
}

Status FunctionService::Launch(FunctionSpec const& spec, std::string const& executable) {
  std::string name = FunctionResourceName(spec);
  InstanceSpec instance;
  instance.function = name;
  instance.service = spec.name;
  instance.entry_point = spec.entry_point;
  instance.signature = spec.signature;
  instance.max_instances = spec.max_instances;
  instance.min_instances = spec.min_instances;
  instance.concurrency = spec.concurrency;
  instance.memory_mb = spec.memory_mb;
  instance.timeout = std::chrono::seconds(spec.timeout_seconds);
  instance.process.working_dir = spec.source_dir;
  instance.process.env = spec.env_vars;
  // Cloud Functions' (1st gen) environment, which libraries read (Sentry's GCP integration among them); the
  // Functions Framework's own (PORT, FUNCTION_TARGET, FUNCTION_SIGNATURE_TYPE, K_SERVICE) the supervisor adds. A
  // value the deploy sets itself wins: apps often read GCP_PROJECT as their real project's id.
  std::string revision = Revision(spec);
  for (auto const& [key, value] :
       std::initializer_list<std::pair<char const*, std::string>>{
           {"FUNCTION_NAME", spec.name},
           {"FUNCTION_REGION", spec.region},
           {"GCP_PROJECT", spec.project},
           {"ENTRY_POINT", spec.entry_point},
           {"FUNCTION_TIMEOUT_SEC", std::to_string(spec.timeout_seconds)},
           {"FUNCTION_MEMORY_MB", std::to_string(spec.memory_mb)},
           {"FUNCTION_IDENTITY", spec.project + "@appspot.gserviceaccount.com"},
           {"K_REVISION", revision}}) {
    instance.process.env.emplace(key, value);
  }
  if (std::string dsn = SentryDsnOf(spec); !dsn.empty()) {  // what Sentry's SDKs read when init names neither
    instance.process.env.emplace("SENTRY_DSN", dsn);
    instance.process.env.emplace("SENTRY_RELEASE", revision);
  }
  // The runtimes Ferry controls listen on a Unix socket; Google's Functions Frameworks (nodejs, and whatever a
  // command runs) on PORT.
  instance.unix_socket = spec.runtime == "cpp" || spec.runtime == "python3";
  if (spec.runtime == "cpp") {
    instance.process.argv = {executable};
  } else if (spec.runtime == "command") {
    instance.process.argv = spec.command;
  } else if (spec.runtime == "nodejs") {
    // Google's Functions Framework from the function's own node_modules; it reads the contract's environment.
    FERRY_ASSIGN_OR_RETURN(instance.process.argv, NodeFrameworkCommand(options_.data_dir));
  } else if (spec.runtime == "python3") {
    FERRY_ASSIGN_OR_RETURN(instance.process.argv, PythonRunnerCommand(options_.data_dir, executable));
  } else {
    return UnimplementedError("runtime " + spec.runtime + " is not supported yet");
  }
  supervisor_.Deploy(std::move(instance));
  if (!TriggerTopic(spec).empty()) dispatcher_.Start(TriggerOf(spec, name));
  std::lock_guard lock(mu_);
  running_[name] = {spec, "", true, executable};
  return OkStatus();
}

void FunctionService::Stop(std::string const& name) {
  dispatcher_.Stop(name);
  supervisor_.Remove(name);
  std::lock_guard lock(mu_);
  running_.erase(name);
}

StatusOr<std::vector<FunctionSpec>> FunctionService::Stored(std::string const& project) {
  FERRY_ASSIGN_OR_RETURN(auto records, store_.ListFunctions());
  std::vector<FunctionSpec> out;
  std::string prefix = FunctionPrefix(project);
  for (auto const& record : records) {
    if (record.name.rfind(prefix, 0) != 0) continue;
    FERRY_ASSIGN_OR_RETURN(auto spec, FunctionSpecFromJson(nlohmann::json::parse(record.spec, nullptr, false)));
    out.push_back(std::move(spec));
  }
  return out;
}

Status FunctionService::CheckBucketPath(BucketRecord& bucket) const {
  if (options_.bucket_roots.empty()) return OkStatus();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path path = fs::weakly_canonical(bucket.path, ec);
  if (ec) return InvalidArgumentError("bucket " + bucket.name + ": bad path: " + ec.message());
  for (auto const& root : options_.bucket_roots) {
    fs::path r = fs::weakly_canonical(root, ec);
    if (ec) continue;
    auto rel = path.lexically_relative(r);
    if (!rel.empty() && *rel.begin() != "..") {
      bucket.path = path.string();
      return OkStatus();
    }
  }
  return Status(StatusCode::kPermissionDenied, "bucket " + bucket.name + ": " + bucket.path +
                                                   " is outside the bucket roots (ferry serve --bucket-root)");
}

StatusOr<DeployResult> FunctionService::Deploy(DeployRequest request) {
  std::lock_guard deploy_lock(deploy_mu_);
  if (request.project.empty()) return InvalidArgumentError("the deploy names no project");
  if (request.project.find_first_of("/ ") != std::string::npos) {
    return InvalidArgumentError("invalid project \"" + request.project + "\"");
  }

  // The desired state, complete and valid before anything is looked at or changed.
  std::set<std::string> seen;
  for (auto const& t : request.topics) {
    std::string full = t.rfind("projects/", 0) == 0 ? t : MakeResourceName(request.project, ResourceKind::kTopic, t);
    auto parsed = ParseResourceName(full, ResourceKind::kTopic);
    if (!parsed.ok()) return InvalidArgumentError("topic \"" + t + "\": " + parsed.status().message());
  }
  for (auto& fn : request.functions) {
    if (fn.project.empty()) fn.project = request.project;
    if (fn.project != request.project) {
      return InvalidArgumentError("function " + fn.name + " is in project " + fn.project + ", the deploy in " +
                                  request.project);
    }
    FERRY_RETURN_IF_ERROR(NormalizeFunctionSpec(fn));
    if (!seen.insert(fn.name).second) return InvalidArgumentError("function " + fn.name + " is declared twice");
    if (!fn.source_dir.empty()) {
      std::string salt = fn.runtime;
      for (auto const& [k, v] : fn.build_environment_variables) salt += "\n" + k + "=" + v;
      auto hash = HashSources(fn.source_dir, salt);
      if (!hash.ok()) return FailedPreconditionError("function " + fn.name + ": " + hash.status().message());
      fn.source_hash = *hash;
    }
  }
  std::set<std::string> schedule_names;
  for (auto& s : request.schedules) {
    if (s.project.empty()) s.project = request.project;
    if (s.project != request.project) {
      return InvalidArgumentError("schedule " + s.name + " is in project " + s.project + ", the deploy in " +
                                  request.project);
    }
    FERRY_RETURN_IF_ERROR(NormalizeScheduleSpec(s));
    if (!schedule_names.insert(s.name).second) return InvalidArgumentError("schedule " + s.name + " is declared twice");
    if (!s.function.empty() && !seen.contains(s.function)) {
      return InvalidArgumentError("schedule " + s.name + " targets function " + s.function +
                                  ", which the deploy does not declare");
    }
  }
  std::set<std::string> bucket_names;
  for (auto& b : request.buckets) {
    b.project = request.project;
    if (!IsValidBucketName(b.name)) return InvalidArgumentError("invalid bucket name \"" + b.name + "\"");
    if (b.path.empty() || b.path[0] != '/') return InvalidArgumentError("bucket " + b.name + " needs an absolute path");
    FERRY_RETURN_IF_ERROR(CheckBucketPath(b));
    if (!bucket_names.insert(b.name).second) return InvalidArgumentError("bucket " + b.name + " is declared twice");
  }
  for (auto const& fn : request.functions) {
    if (!request.prune && IsStorageTrigger(fn.trigger_type)) {
      // gcloud functions deploy --trigger-bucket: the bucket must be one a deploy file declared in this project.
      FERRY_ASSIGN_OR_RETURN(auto stored, store_.ListBuckets());
      bool found = std::any_of(stored.begin(), stored.end(), [&](BucketRecord const& b) {
        return b.name == fn.trigger_resource && b.project == request.project;
      });
      if (!found) {
        return FailedPreconditionError("bucket " + fn.trigger_resource + " does not exist in project " +
                                       request.project + ": declare it under buckets in a deploy file first");
      }
      continue;
    }
    if (IsStorageTrigger(fn.trigger_type) && !bucket_names.contains(fn.trigger_resource)) {
      return InvalidArgumentError("function " + fn.name + " is triggered by bucket " + fn.trigger_resource +
                                  ", which the deploy does not declare under buckets");
    }
  }

  // What is stored now, then the plan: the difference (control/deploy_plan.h).
  DeployedState state;
  for (auto const& topic : WantedTopics(request)) {
    auto existing = store_.GetTopic(topic);
    if (existing.ok()) {
      state.topics.insert(topic);
    } else if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status();
    }
  }
  FERRY_ASSIGN_OR_RETURN(state.functions, Stored(request.project));
  for (auto const& name : TriggerSubscriptionsOf(request, state.functions)) {
    auto existing = store_.GetSubscription(name);
    if (existing.ok()) {
      state.subscriptions[name] = *std::move(existing);
    } else if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status();
    }
  }
  FERRY_ASSIGN_OR_RETURN(state.schedules, store_.ListSchedules());
  FERRY_ASSIGN_OR_RETURN(state.buckets, store_.ListBuckets());
  {
    std::lock_guard lock(mu_);
    for (auto const& [name, r] : running_) {
      if (r.error.empty()) state.running.insert(name);
    }
  }
  FERRY_ASSIGN_OR_RETURN(auto plan, PlanDeploy(request, state, ToUnixMillis(clock_.Now())));
  DeployResult result{std::move(plan.items), false, VersionNotes(request.functions)};
  auto const& change = plan.change;
  auto const& to_launch = plan.to_launch;
  auto const& to_stop = plan.to_stop;
  if (request.dry_run) return result;
  for (auto const& b : request.buckets) {
    std::error_code ec;
    std::filesystem::create_directories(b.path, ec);
    if (ec) return FailedPreconditionError("bucket " + b.name + ": cannot create " + b.path + ": " + ec.message());
  }

  // Build before anything changes: a function that does not build fails the whole deploy.
  std::map<std::string, std::string> executables;
  for (auto const& fn : to_launch) {
    FERRY_ASSIGN_OR_RETURN(auto built, Build(fn));
    executables[fn.name] = built.executable;
    if (!built.log.empty()) result.notes.push_back("function " + fn.name + ": pip install:\n" + built.log);
  }
  FERRY_RETURN_IF_ERROR(store_.ApplyDeployment(change));
  result.applied = true;
  if ((!change.put_schedules.empty() || !change.delete_schedules.empty()) && options_.schedules_changed) {
    options_.schedules_changed();
  }
  if ((!change.put_buckets.empty() || !change.delete_buckets.empty()) && options_.buckets_changed) {
    options_.buckets_changed();
  }

  for (auto const& name : to_stop) Stop(name);
  for (auto const& fn : to_launch) {
    Status launched = Launch(fn, executables[fn.name]);
    if (!launched.ok()) {
      std::lock_guard lock(mu_);
      running_[FunctionResourceName(fn)] = {fn, launched.message()};
    }
  }
  RemoveUnusedVenvs(options_.data_dir, InUseExecutables());
  return result;
}

StatusOr<std::vector<FunctionState>> FunctionService::List(std::string const& project) {
  FERRY_ASSIGN_OR_RETURN(auto specs, Stored(project));
  std::vector<FunctionState> out;
  for (auto& spec : specs) out.push_back(StateOf(std::move(spec)));
  AddOtherNodes(out);
  return out;
}

StatusOr<FunctionState> FunctionService::Get(std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto records, store_.ListFunctions());
  auto it = std::find_if(records.begin(), records.end(), [&](FunctionRecord const& r) { return r.name == name; });
  if (it == records.end()) return NotFoundError("Function " + name + " does not exist");
  FERRY_ASSIGN_OR_RETURN(auto spec, FunctionSpecFromJson(nlohmann::json::parse(it->spec, nullptr, false)));
  std::vector<FunctionState> one{StateOf(std::move(spec))};
  AddOtherNodes(one);
  return std::move(one[0]);
}

// Every round of Follow: this node's instances of each function ({"function": [running, busy]}), for the other
// nodes' listings. A report runs out after three missed rounds, so a dead node's instances leave the listing.
void FunctionService::ReportThisNode() {
  nlohmann::json functions = nlohmann::json::object();
  {
    std::lock_guard lock(mu_);
    for (auto const& [name, r] : running_) {
      auto usage = supervisor_.UsageOf(name);
      functions[name] = {usage.running, usage.busy};
    }
  }
  int64_t until = ToUnixMillis(clock_.Now()) + 3'000;
  (void)store_.ReportNode(options_.node, nlohmann::json{{"functions", functions}}.dump(), until);
}

void FunctionService::AddOtherNodes(std::vector<FunctionState>& states) {
  if (options_.node.empty()) return;
  for (auto& state : states) state.nodes.push_back({options_.node, state.instances_running, state.instances_busy});
  auto reports = store_.LiveNodes(ToUnixMillis(clock_.Now()));
  if (!reports.ok()) return;  // the database is away: this node's part is what it knows
  for (auto const& report : *reports) {
    if (report.node == options_.node) continue;  // its own part is live, not a second old
    auto status = nlohmann::json::parse(report.status, nullptr, false);
    if (!status.is_object() || !status.contains("functions") || !status["functions"].is_object()) continue;
    auto const& functions = status["functions"];
    for (auto& state : states) {
      auto it = functions.find(FunctionResourceName(state.spec));
      if (it == functions.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() ||
          !(*it)[1].is_number_integer()) {
        continue;
      }
      NodeInstances part{report.node, (*it)[0].get<int>(), (*it)[1].get<int>()};
      state.instances_running += part.running;
      state.instances_busy += part.busy;
      state.nodes.push_back(std::move(part));
    }
  }
  for (auto& state : states) {
    std::sort(state.nodes.begin(), state.nodes.end(), [](auto const& a, auto const& b) { return a.node < b.node; });
  }
}

FunctionState FunctionService::StateOf(FunctionSpec spec) {
  std::string name = FunctionResourceName(spec);
  FunctionState state;
  state.spec = std::move(spec);
  {
    std::lock_guard lock(mu_);
    auto r = running_.find(name);
    if (r == running_.end()) {
      state.state = "FAILED";
      state.error = "not running";
    } else {
      state.state = !r->second.ready ? "DEPLOYING" : r->second.error.empty() ? "ACTIVE" : "FAILED";
      state.error = r->second.error;
    }
  }
  auto usage = supervisor_.UsageOf(name);
  state.instances_running = usage.running;
  state.instances_busy = usage.busy;
  return state;
}

Status FunctionService::Delete(std::string const& name) {
  std::lock_guard deploy_lock(deploy_mu_);
  FERRY_ASSIGN_OR_RETURN(auto state, Get(name));
  Deployment change;
  change.delete_functions.push_back(name);
  if (!TriggerTopic(state.spec).empty()) {
    std::string sub = TriggerSubscriptionName(state.spec);
    if (store_.GetSubscription(sub).ok()) change.delete_subscriptions.push_back(sub);
  }
  FERRY_RETURN_IF_ERROR(store_.ApplyDeployment(change));
  Stop(name);
  return OkStatus();
}

StatusOr<CallResult> FunctionService::Call(std::string const& name, std::string const& data) {
  FERRY_ASSIGN_OR_RETURN(auto state, Get(name));
  if (state.state != "ACTIVE") return FailedPreconditionError("Function " + name + " is not running: " + state.error);
  auto const& spec = state.spec;
  ExecutionRecord record;
  record.execution_id = NewExecutionId();
  record.function = name;
  record.trigger = "call";
  record.attempt = 1;
  Invocation invocation;
  if (spec.signature == "http") {
    invocation.execution_id = record.execution_id;
    invocation.body = data;
  } else {
    PubsubTriggerSpec trigger = TriggerOf(spec, name);
    ReceivedMessage message;
    message.message.data = data;
    message.message.message_id = record.execution_id;
    message.message.publish_time_ms = ToUnixMillis(clock_.Now());
    message.attempt = 1;
    record.message_id = message.message.message_id;
    invocation = PubsubDispatcher::MakeInvocation(trigger, message, record.execution_id);
  }
  invocation.bounded_wait = true;  // an admin :call or a schedule waits in the queue of HTTP calls
  FERRY_ASSIGN_OR_RETURN(auto slot, TakeClusterSlot(name, nullptr));  // the cluster's limit, as InvokeHttp
  auto result = Execute(supervisor_, clock_, [this](ExecutionPhase p, ExecutionRecord const& r) { OnExecution(p, r); },
                        record, std::move(invocation));
  GiveClusterSlot(slot);
  return CallResult{record.execution_id, ExecutionStatusName(result.status), result.http_status, result.body,
                    result.error};
}

StatusOr<FunctionService::HttpTarget> FunctionService::FindRunning(std::string const& project,
                                                                   std::string const& region, std::string const& id) {
  auto target = [](auto const& entry) {
    auto const& spec = entry.second.spec;
    return HttpTarget{entry.first, spec.trigger_type == kHttpTrigger, spec.allow_unauthenticated};
  };
  std::lock_guard lock(mu_);
  // Every call looks its function up: by its full name when the region is known, else among the project's.
  std::string const prefix = "projects/" + project + "/locations/";
  if (!region.empty()) {
    if (auto it = running_.find(prefix + region + "/functions/" + id); it != running_.end()) return target(*it);
  } else {
    for (auto it = running_.lower_bound(prefix); it != running_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second.spec.name == id) return target(*it);
    }
  }
  return NotFoundError("Function " + id + " does not exist in project " + project);
}

Status FunctionService::CheckHttpRunning(std::string const& name) {
  std::lock_guard lock(mu_);
  auto it = running_.find(name);
  if (it == running_.end()) return NotFoundError("Function " + name + " does not exist");
  if (it->second.spec.trigger_type != kHttpTrigger) {
    return FailedPreconditionError("Function " + name + " is not an HTTP function");
  }
  if (!it->second.ready || !it->second.error.empty()) {
    return FailedPreconditionError("Function " + name + " is not running: " + it->second.error);
  }
  return OkStatus();
}

ExecutionRecord FunctionService::NewHttpRecord(std::string const& name) {
  ExecutionRecord record;
  record.execution_id = NewExecutionId();
  record.function = name;
  record.trigger = "http";
  record.attempt = 1;
  return record;
}

StatusOr<std::string> FunctionService::TakeClusterSlot(std::string const& name,
                                                       std::shared_ptr<std::atomic<bool>> const& client_gone) {
  if (!slots_) return std::string();
  int slots = 0;
  std::chrono::seconds timeout{0};
  {
    std::lock_guard lock(mu_);
    auto it = running_.find(name);
    if (it == running_.end()) return NotFoundError("Function " + name + " does not exist");
    slots = std::max(1, it->second.spec.max_instances) * std::max(1, it->second.spec.concurrency);
    timeout = std::chrono::seconds(it->second.spec.timeout_seconds);
  }
  auto const give_up = clock_.SteadyNow() + timeout;
  for (auto pause = std::chrono::milliseconds(5);; pause = std::min(pause * 2, std::chrono::milliseconds(100))) {
    if (std::string slot = slots_->TryTake(name, slots); !slot.empty()) return slot;
    if (client_gone && client_gone->load()) return Status(StatusCode::kCancelled, "the caller left");
    if (clock_.SteadyNow() >= give_up) {
      return Status(StatusCode::kResourceExhausted, "no instance of function " + name +
                                                        " became free in the cluster within its timeout; retry later");
    }
    std::this_thread::sleep_for(pause);
  }
}

StatusOr<CallResult> FunctionService::InvokeHttp(std::string const& name, Invocation request) {
  FERRY_RETURN_IF_ERROR(CheckHttpRunning(name));
  ExecutionRecord record = NewHttpRecord(name);
  request.execution_id = record.execution_id;
  // In a cluster the function's limit is the cluster's: the call first takes one of its slots.
  auto slot = TakeClusterSlot(name, request.client_gone);
  if (!slot.ok()) {
    int http = slot.status().code() == StatusCode::kResourceExhausted ? 429
               : slot.status().code() == StatusCode::kCancelled       ? 499
                                                                      : 503;
    return CallResult{record.execution_id, "error", http, std::string(slot.status().message()),
                      std::string(slot.status().message())};
  }
  auto result = Execute(supervisor_, clock_, [this](ExecutionPhase p, ExecutionRecord const& r) { OnExecution(p, r); },
                        record, std::move(request));
  GiveClusterSlot(*slot);
  return CallResult{record.execution_id, ExecutionStatusName(result.status), result.http_status,
                    std::move(result.body), result.error, std::move(result.headers)};
}

bool FunctionService::TryInvokeHttpAsync(std::string const& name, Invocation request, boost::asio::io_context& io,
                                         std::function<void(CallResult)> done) {
  // In a cluster a call takes a slot from the database first, which waits: InvokeHttp, on a thread of its own.
  if (!options_.node.empty()) return false;
  if (!CheckHttpRunning(name).ok()) return false;  // InvokeHttp tells why
  auto record = std::make_shared<ExecutionRecord>(NewHttpRecord(name));
  request.execution_id = record->execution_id;
  // The execution starts when an instance takes the call, as in Execute; both callbacks run on `io`'s thread.
  auto started = std::make_shared<std::optional<SteadyPoint>>();
  auto start = [this, record, started] {
    record->start_ms = ToUnixMillis(clock_.Now());
    OnExecution(ExecutionPhase::kStarted, *record);
    *started = clock_.SteadyNow();
  };
  request.on_start = start;
  return supervisor_.TryInvokeAsync(name, request, io, [this, record, started, start, done = std::move(done)](
                                                           InvocationResult result) {
    if (!*started) start();  // it never reached an instance (429, removed): recorded as it ended
    record->duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.SteadyNow() - **started).count();
    record->status = result.status;
    record->error = result.error;
    {
      latency::ScopedStage stage(Stage::kFunctionRecord);
      OnExecution(ExecutionPhase::kFinished, *record);
    }
    done(CallResult{record->execution_id, ExecutionStatusName(result.status), result.http_status,
                    std::move(result.body), result.error, std::move(result.headers)});
  });
}

void FunctionService::OnExecution(ExecutionPhase phase, ExecutionRecord const& r) {
  int64_t now = ToUnixMillis(clock_.Now());
  if (phase == ExecutionPhase::kStarted) {
    log_.Append({0, now, r.function, r.execution_id, "ferry", "DEBUG", "Function execution started"});
    return;
  }
  std::string status = ExecutionStatusName(r.status);
  bool ok = r.status == ExecutionStatus::kOk;
  // Held briefly: the instance's last lines (read from its pipe on another thread) may still be on their way.
  constexpr auto kAfterOutput = std::chrono::milliseconds(20);
  if (!ok && r.status != ExecutionStatus::kError && !r.error.empty()) {
    log_.AppendAfter({0, now, r.function, r.execution_id, "ferry", "ERROR", r.error}, kAfterOutput);
  }
  log_.AppendAfter({0, now, r.function, r.execution_id, "ferry", ok ? "DEBUG" : "ERROR",
                    "Function execution took " + std::to_string(r.duration_ms) + " ms, finished with status: '" +
                        status + "'"},
                   kAfterOutput);
  ExecutionRow row{r.execution_id, r.function, r.trigger, r.message_id, r.attempt, status, r.start_ms, r.duration_ms,
                   r.error};
  log_.Record(row);
  std::lock_guard lock(mu_);
  if (!ok) {
    if (auto it = running_.find(r.function); it != running_.end()) {
      if (auto dsn = ParseSentryDsn(SentryDsnOf(it->second.spec)); dsn.ok()) {
        sentry_.Report(*std::move(dsn), std::move(row), Revision(it->second.spec));
      }
    }
  }
  auto& c = counters_[r.function];
  ++c.by_status[static_cast<std::size_t>(r.status)];
  double seconds = static_cast<double>(r.duration_ms) / 1000.0;
  c.duration_sum_seconds += seconds;
  for (std::size_t i = 0; i <= kDurationBuckets.size(); ++i) {
    if (i == kDurationBuckets.size() || seconds <= kDurationBuckets[i]) {
      ++c.buckets[i];  // the first bucket that holds it; rendering sums them up
      break;
    }
  }
}

std::string FunctionService::SentryDsnOf(FunctionSpec const& spec) const {
  return spec.sentry_dsn.empty() ? options_.sentry_dsn : spec.sentry_dsn;
}

void FunctionService::OnInstanceLine(std::string const& function, InstanceLine line) {
  std::string severity = !line.severity.empty() ? std::move(line.severity) : line.is_stderr ? "ERROR" : "INFO";
  log_.Append({0, ToUnixMillis(clock_.Now()), function, std::move(line.execution_id),
               line.is_stderr ? "stderr" : "stdout", std::move(severity), std::move(line.message)});
}

std::map<std::string, int64_t> FunctionService::ExecutionCounts(std::string const& name) {
  std::lock_guard lock(mu_);
  std::map<std::string, int64_t> out;
  auto it = counters_.find(name);
  for (std::size_t s = 0; s < std::tuple_size_v<decltype(Counters::by_status)>; ++s) {
    out[ExecutionStatusName(static_cast<ExecutionStatus>(s))] = it == counters_.end() ? 0 : it->second.by_status[s];
  }
  return out;
}

std::string FunctionService::RenderMetrics() {
  std::map<std::string, Counters> counters;
  std::vector<std::pair<std::string, int>> names;  // with max instances
  {
    std::lock_guard lock(mu_);
    counters = counters_;
    for (auto const& [name, r] : running_) {
      names.emplace_back(name, r.spec.max_instances);
      counters.try_emplace(name);  // zeros until it runs: rates and alerts see every deployed function
    }
  }
  PrometheusWriter w;
  w.Family("ferry_function_executions_total", "counter", "Executions by function and status.");
  for (auto const& [fn, c] : counters) {
    for (std::size_t s = 0; s < c.by_status.size(); ++s) {
      w.Sample("ferry_function_executions_total",
               {{"function", fn}, {"status", ExecutionStatusName(static_cast<ExecutionStatus>(s))}},
               static_cast<double>(c.by_status[s]));
    }
  }
  w.Family("ferry_function_execution_duration_seconds", "histogram", "How long executions took.");
  for (auto const& [fn, c] : counters) {
    int64_t cumulative = 0;
    int64_t total = 0;
    for (auto v : c.by_status) total += v;
    for (std::size_t i = 0; i <= kDurationBuckets.size(); ++i) {
      cumulative += c.buckets[i];
      char bound[32];
      std::snprintf(bound, sizeof bound, "%g", i == kDurationBuckets.size() ? 0.0 : kDurationBuckets[i]);
      w.Sample("ferry_function_execution_duration_seconds_bucket",
               {{"function", fn}, {"le", i == kDurationBuckets.size() ? "+Inf" : bound}},
               static_cast<double>(cumulative));
    }
    w.Sample("ferry_function_execution_duration_seconds_sum", {{"function", fn}}, c.duration_sum_seconds);
    w.Sample("ferry_function_execution_duration_seconds_count", {{"function", fn}}, static_cast<double>(total));
  }
  w.Family("ferry_function_instances", "gauge", "Instances of the function by state.");
  for (auto const& [fn, max] : names) {
    auto usage = supervisor_.UsageOf(fn);
    w.Sample("ferry_function_instances", {{"function", fn}, {"state", "running"}}, usage.running);
    w.Sample("ferry_function_instances", {{"function", fn}, {"state", "busy"}}, usage.busy);
  }
  w.Family("ferry_function_max_instances", "gauge",
           "The function's max_instances: a limit across the cluster (compare with the sum of busy instances).");
  for (auto const& [fn, max] : names) w.Sample("ferry_function_max_instances", {{"function", fn}}, max);
  return w.Take() + sentry_.RenderMetrics();
}

}  // namespace ferry
