#include "api/functions/functions_api.h"

#include <set>

#include <nlohmann/json.hpp>

#include "common/split.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

using nlohmann::json;

HttpResponse Reply(json const& body) { return {200, "application/json", SafeDump(body), {}}; }

// Ferry's runtimes by the names Cloud Functions gives them (Debian 12's Python is 3.11, the machine's Node 20).
std::string GoogleRuntime(std::string const& runtime) {
  if (runtime == "python3") return "python311";
  if (runtime == "nodejs") return "nodejs20";
  return runtime;  // cpp, command: Ferry's own
}

json Hidden(Attributes const& values) {
  json out = json::object();
  for (auto const& [k, v] : values) out[k] = "(hidden)";
  return out;
}

// A function as Cloud Functions v1's CloudFunction resource.
json CloudFunctionJson(FunctionState const& f) {
  FunctionSpec const& s = f.spec;
  json j{{"name", FunctionResourceName(s)},
         {"entryPoint", s.entry_point},
         {"runtime", GoogleRuntime(s.runtime)},
         {"timeout", std::to_string(s.timeout_seconds) + "s"},
         {"availableMemoryMb", s.memory_mb},
         {"maxInstances", s.max_instances},
         {"serviceAccountEmail", s.project + "@appspot.gserviceaccount.com"},
         {"ingressSettings", "ALLOW_ALL"},
         {"versionId", "1"},
         {"status", f.state == "ACTIVE" ? "ACTIVE" : f.state == "DEPLOYING" ? "DEPLOY_IN_PROGRESS" : "OFFLINE"}};
  if (s.min_instances > 0) j["minInstances"] = s.min_instances;
  if (!s.env_vars.empty()) j["environmentVariables"] = Hidden(s.env_vars);
  if (!s.build_environment_variables.empty()) j["buildEnvironmentVariables"] = Hidden(s.build_environment_variables);
  if (s.trigger_type == kHttpTrigger) {
    // The path Ferry serves it on; the host is whatever the client reaches Ferry by.
    j["httpsTrigger"] = {{"url", "/functions/" + s.name}, {"securityLevel", "SECURE_OPTIONAL"}};
  } else {
    json trigger{{"eventType", s.trigger_type}};
    if (s.trigger_type == kPubsubTrigger) {
      trigger["resource"] = s.trigger_resource;
      trigger["service"] = "pubsub.googleapis.com";
    } else {
      trigger["resource"] = "projects/_/buckets/" + s.trigger_resource;
      trigger["service"] = "storage.googleapis.com";
    }
    if (s.retry) trigger["failurePolicy"] = {{"retry", json::object()}};
    j["eventTrigger"] = trigger;
  }
  return j;
}

HttpResponse Unimplemented(std::string const& what) {
  return ErrorResponse(Status(StatusCode::kUnimplemented,
                              what + " is not served by Ferry yet: deploy and delete functions with a deploy file "
                                     "(ferry deploy -f ferry.yaml)"));
}

}  // namespace

bool FunctionsApi::Serves(std::string_view path) {
  bool v1 = path.rfind("/v1/projects/", 0) == 0, v2 = path.rfind("/v2/projects/", 0) == 0;
  if (!v1 && !v2) return false;
  auto parts = Split(path.substr(1), '/');  // v1 projects {p} locations [{r} functions [{f}]]
  if (v1 && parts.size() == 4 && parts[3] == "locations") return true;
  return parts.size() >= 6 && parts.size() <= 7 && parts[3] == "locations" &&
         (parts[5] == "functions" || parts[5].rfind("functions:", 0) == 0 || (v2 && parts[5] == "runtimes"));
}

HttpResponse FunctionsApi::Handle(HttpRequest const& req) {
  auto parts = Split(std::string_view(req.path).substr(1), '/');
  bool const v2 = parts[0] == "v2";
  std::string project(parts[2]);
  if (!IsValidProjectId(project)) return ErrorResponse(InvalidArgumentError("Invalid project id \"" + project + "\""));
  auto list = functions_.List(project);
  if (!list.ok()) return ErrorResponse(list.status());

  if (parts.size() == 4) {  // v1 locations
    if (req.method != "GET") return Unimplemented(req.method + " " + req.path);
    std::set<std::string> regions{kDefaultRegion};
    for (auto const& f : *list) regions.insert(f.spec.region);
    json locations = json::array();
    for (auto const& r : regions) {
      locations.push_back({{"name", "projects/" + project + "/locations/" + r}, {"locationId", r}});
    }
    return Reply({{"locations", locations}});
  }
  std::string region(parts[4]);
  if (region != "-" && !IsValidRegionId(region)) {
    return ErrorResponse(InvalidArgumentError("Invalid location \"" + region + "\""));
  }
  if (parts[5] != "functions" && parts[5] != "runtimes") {  // functions:generateUploadUrl and the like
    return Unimplemented("gcloud functions deploy (" + std::string(parts[5]) + ")");
  }
  if (v2 && parts[5] == "runtimes") {
    json runtimes = json::array();
    for (char const* r : {"python311", "nodejs20"}) {
      runtimes.push_back({{"name", r}, {"displayName", r}, {"stage", "GA"}, {"environment", "GEN_1"}});
    }
    return Reply({{"runtimes", runtimes}});
  }

  if (parts.size() == 6) {  // the collection
    if (req.method != "GET") return Unimplemented("gcloud functions deploy (" + req.method + " " + req.path + ")");
    if (v2) return Reply(json::object());  // no 2nd-gen functions
    json functions = json::array();
    for (auto const& f : *list) {
      if (region == "-" || f.spec.region == region) functions.push_back(CloudFunctionJson(f));
    }
    return Reply(functions.empty() ? json::object() : json{{"functions", functions}});
  }

  std::string_view last = parts[6];
  auto colon = last.find(':');
  std::string id(last.substr(0, colon));
  std::string verb = colon == std::string_view::npos ? "" : std::string(last.substr(colon + 1));
  std::string const name = "projects/" + project + "/locations/" + region + "/functions/" + id;
  FunctionState const* found = nullptr;
  for (auto const& f : *list) {
    if (FunctionResourceName(f.spec) == name) found = &f;
  }
  if (found == nullptr) return ErrorResponse(NotFoundError("Function " + name + " does not exist"));
  if (v2) {
    if (req.method != "GET" || !verb.empty()) return Unimplemented(req.method + " " + req.path);
    return Reply({{"name", name}, {"environment", "GEN_1"}, {"state", found->state == "ACTIVE" ? "ACTIVE" : "FAILED"}});
  }
  if (verb.empty()) {
    if (req.method == "GET") return Reply(CloudFunctionJson(*found));
    return Unimplemented("gcloud functions deploy / delete (" + req.method + " " + req.path + ")");
  }
  if (verb != "call") return Unimplemented(":" + verb);
  if (req.method != "POST") return MethodNotAllowed(req, "POST");
  auto body = ParseJsonText(req.body.empty() ? "{}" : req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (!body->is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
  std::string data;
  if (body->contains("data")) {
    if (!(*body)["data"].is_string()) return ErrorResponse(InvalidArgumentError("\"data\" must be a string"));
    data = (*body)["data"].get<std::string>();
  }
  auto result = functions_.Call(name, data);
  if (!result.ok()) return ErrorResponse(result.status());
  json out{{"executionId", result->execution_id}};
  if (result->status == "ok") {
    out["result"] = result->body.empty() ? "OK" : result->body;
  } else {
    out["error"] = result->error.empty() ? result->status : result->error;
  }
  return Reply(out);
}

}  // namespace ferry
