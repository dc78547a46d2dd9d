#include "api/functions/functions_api.h"

#include <chrono>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "common/random_hex.h"
#include "common/split.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "functions/source_archive.h"
#include "model/cloud_function.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

using nlohmann::json;

constexpr char kInvoker[] = "roles/cloudfunctions.invoker";

HttpResponse Reply(json const& body) { return {200, "application/json", SafeDump(body), {}}; }

HttpResponse Unimplemented(std::string const& what) {
  return ErrorResponse(Status(StatusCode::kUnimplemented, what + " is not served by Ferry"));
}

// The runtimes Ferry runs, by Cloud Functions' names: Python on the system's python3, Node.js on the system's node.
std::vector<std::string> Runtimes() {
  std::vector<std::string> out;
  for (int v = 7; v <= 13; ++v) out.push_back("python3" + std::to_string(v));
  for (int v = 10; v <= 22; v += 2) out.push_back("nodejs" + std::to_string(v));
  return out;
}


Status NotOwned(FunctionState const& f) {
  return FailedPreconditionError("Function " + FunctionResourceName(f.spec) + " belongs to a deploy file: change or " +
                                 "delete it there (ferry deploy -f ferry.yaml); gcloud changes only the functions " +
                                 "it deployed");
}

}  // namespace

FunctionsApi::FunctionsApi(FunctionService& functions, std::string const& data_dir,
                           std::function<std::string(HttpRequest const&)> base_url)
    : functions_(functions),
      sources_dir_((std::filesystem::absolute(data_dir) / "function-sources").string()),
      base_url_(std::move(base_url)),
      uploads_((std::filesystem::absolute(data_dir) / "uploads").string()) {}

bool FunctionsApi::Serves(std::string_view path) {
  if (path.rfind("/upload/functions/", 0) == 0 || path.rfind("/v1/operations/", 0) == 0) return true;
  bool v1 = path.rfind("/v1/projects/", 0) == 0, v2 = path.rfind("/v2/projects/", 0) == 0;
  if (!v1 && !v2) return false;
  auto parts = Split(path.substr(1), '/');  // v1 projects {p} locations [{r} functions [{f}]]
  if (v1 && parts.size() == 3) return true;                             // Resource Manager: the project
  if (v1 && parts.size() == 5 && parts[3] == "services") return true;   // Service Usage
  if (v1 && parts.size() == 4 && parts[3] == "locations") return true;
  if (v1 && parts.size() == 6 && parts[3] == "locations" && parts[5] == "defaultServiceAccount") return true;
  return parts.size() >= 6 && parts.size() <= 7 && parts[3] == "locations" &&
         (parts[5] == "functions" || parts[5].rfind("functions:", 0) == 0 || (v2 && parts[5] == "runtimes"));
}

std::size_t FunctionsApi::BodyLimit(std::string_view target, std::size_t otherwise) {
  if (target.rfind("/upload/functions/", 0) != 0) return otherwise;
  std::string id = SourceUploads::IdOf(target);
  return !id.empty() && uploads_.Waiting(id) ? SourceUploads::kMaxBytes : otherwise;
}

json FunctionsApi::CloudFunction(HttpRequest const& req, FunctionState const& f) const {
  json j = CloudFunctionToJson(f.spec, {.base_url = base_url_(req)});
  j["status"] = f.state == "ACTIVE" ? "ACTIVE" : f.state == "DEPLOYING" ? "DEPLOY_IN_PROGRESS" : "OFFLINE";
  return j;
}

HttpResponse FunctionsApi::Operation(std::string const& type, std::string const& target, json response) {
  std::string id = RandomHex(6);
  json op{{"name", "operations/" + id},
          {"done", true},
          {"metadata",
           {{"@type", "type.googleapis.com/google.cloud.functions.v1.OperationMetadataV1"},
            {"target", target},
            {"type", type},
            {"updateTime", FormatRfc3339(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch()).count())}}},
          {"response", std::move(response)}};
  if (op["response"].contains("versionId")) op["metadata"]["versionId"] = op["response"]["versionId"];
  std::string text = SafeDump(op);
  std::lock_guard lock(ops_mu_);
  ops_[id] = text;
  ops_order_.push_back(id);
  if (ops_order_.size() > 1000) {
    ops_.erase(ops_order_.front());
    ops_order_.pop_front();
  }
  return {200, "application/json", text, {}};
}

HttpResponse FunctionsApi::Handle(HttpRequest const& req) {
  auto parts = Split(std::string_view(req.path).substr(1), '/');
  if (parts[0] == "upload") {  // upload functions {id}.zip
    if (req.method != "PUT" && req.method != "POST") return MethodNotAllowed(req, "PUT");
    std::string id = SourceUploads::IdOf(req.path);
    if (id.empty() || parts.size() != 3) return ErrorResponse(NotFoundError("No upload is expected at this URL"));
    Status st = uploads_.Put(id, req.body);
    return st.ok() ? HttpResponse{200, "application/json", "{}", {}} : ErrorResponse(st);
  }
  if (parts[1] == "operations") {
    if (req.method != "GET") return MethodNotAllowed(req, "GET");
    std::string id = parts.size() == 3 ? std::string(parts[2]) : std::string();
    std::lock_guard lock(ops_mu_);
    auto it = ops_.find(id);
    if (it == ops_.end()) return ErrorResponse(NotFoundError("Operation operations/" + id + " does not exist"));
    return {200, "application/json", it->second, {}};
  }
  bool const v2 = parts[0] == "v2";
  std::string project(parts[2]);
  if (!IsValidProjectId(project)) return ErrorResponse(InvalidArgumentError("Invalid project id \"" + project + "\""));
  if (parts.size() == 3 || (parts.size() == 5 && parts[3] == "services")) {
    // What gcloud functions deploy checks before it deploys: the project, and the APIs it needs are on.
    if (req.method != "GET") return Unimplemented(req.method + " " + req.path);
    if (parts.size() == 3) {
      return Reply({{"projectId", project}, {"name", project}, {"projectNumber", "0"}, {"lifecycleState", "ACTIVE"}});
    }
    return Reply({{"name", "projects/" + project + "/services/" + std::string(parts[4])}, {"state", "ENABLED"}});
  }
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
  std::string const parent = "projects/" + project + "/locations/" + region;
  if (parts[5] == "defaultServiceAccount") {
    return Reply({{"name", parent + "/defaultServiceAccount"},
                  {"serviceAccountEmail", "projects/" + project + "/serviceAccounts/ferry@" + project +
                                              ".iam.gserviceaccount.com"}});
  }
  if (v2 && parts[5] == "runtimes") {
    // gcloud asks for one runtime by name: filter=name=python311 AND environment=GEN_1.
    std::string filter = req.Query("filter"), wanted;
    if (auto at = filter.find("name="); at != std::string::npos) {
      wanted = filter.substr(at + 5, filter.find(' ', at) == std::string::npos ? std::string::npos
                                                                                 : filter.find(' ', at) - at - 5);
    }
    json runtimes = json::array();
    for (auto const& r : Runtimes()) {
      if (!wanted.empty() && r != wanted) continue;
      runtimes.push_back({{"name", r}, {"displayName", r}, {"stage", "GA"}, {"environment", "GEN_1"}});
    }
    return Reply({{"runtimes", runtimes}});
  }
  if (parts.size() == 6 && parts[5] == "functions:generateUploadUrl") {
    if (v2 || req.method != "POST") return MethodNotAllowed(req, "POST");
    auto id = uploads_.Create();
    if (!id.ok()) return ErrorResponse(id.status());
    return Reply({{"uploadUrl", base_url_(req) + "/upload/functions/" + *id + ".zip"}});
  }
  if (parts[5] != "functions") return Unimplemented(std::string(parts[5]));

  if (parts.size() == 6) {  // the collection
    if (v2) {
      if (req.method != "GET") return Unimplemented("Cloud Functions 2nd gen: deploy with --no-gen2");
      return Reply(json::object());  // no 2nd-gen functions
    }
    if (req.method == "POST") {
      if (region == "-") return ErrorResponse(InvalidArgumentError("Name a location to create a function in"));
      auto body = ParseJsonText(req.body.empty() ? "{}" : req.body);
      if (!body.ok()) return ErrorResponse(body.status());
      return Create(req, parent, *body);
    }
    if (req.method != "GET") return MethodNotAllowed(req, "GET, POST");
    json functions = json::array();
    for (auto const& f : *list) {
      if (region == "-" || f.spec.region == region) functions.push_back(CloudFunction(req, f));
    }
    return Reply(functions.empty() ? json::object() : json{{"functions", functions}});
  }

  std::string_view last = parts[6];
  auto colon = last.find(':');
  std::string id(last.substr(0, colon));
  std::string verb = colon == std::string_view::npos ? "" : std::string(last.substr(colon + 1));
  if (!IsValidFunctionName(id)) return ErrorResponse(InvalidArgumentError("Invalid function id \"" + id + "\""));
  std::string const name = parent + "/functions/" + id;
  FunctionState const* found = nullptr;
  for (auto const& f : *list) {
    if (FunctionResourceName(f.spec) == name) found = &f;
  }
  if (found == nullptr) return ErrorResponse(NotFoundError("Function " + name + " does not exist"));
  if (v2) {
    if (req.method != "GET" || !verb.empty()) return Unimplemented("Cloud Functions 2nd gen: use --no-gen2");
    return Reply({{"name", name}, {"environment", "GEN_1"}, {"state", found->state == "ACTIVE" ? "ACTIVE" : "FAILED"}});
  }
  if (verb.empty()) {
    if (req.method == "GET") return Reply(CloudFunction(req, *found));
    if (req.method == "DELETE") return Remove(*found);
    if (req.method == "PATCH") {
      auto body = ParseJsonText(req.body.empty() ? "{}" : req.body);
      if (!body.ok()) return ErrorResponse(body.status());
      return Patch(req, *found, *body);
    }
    return MethodNotAllowed(req, "GET, PATCH, DELETE");
  }
  if (verb == "getIamPolicy" || verb == "setIamPolicy") return IamPolicy(req, *found, verb == "setIamPolicy");
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

StatusOr<FunctionState> FunctionsApi::DeployFromApi(FunctionSpec spec, std::string const& upload_url) {
  std::filesystem::path const home = std::filesystem::path(sources_dir_) / spec.project / spec.region / spec.name;
  std::filesystem::path dir;
  if (!upload_url.empty()) {
    FERRY_ASSIGN_OR_RETURN(auto zip, uploads_.Take(upload_url));
    dir = home / SourceUploads::IdOf(upload_url);
    FERRY_RETURN_IF_ERROR(UnpackZip(zip, dir.string()));
    spec.source_dir = dir.string();
  } else if (spec.source_dir.empty()) {
    return InvalidArgumentError("The function needs its source: deploy it with gcloud functions deploy --source DIR");
  }
  DeployRequest request;
  request.project = spec.project;
  request.prune = false;
  std::string const name = FunctionResourceName(spec);
  request.functions.push_back(std::move(spec));
  auto deployed = functions_.Deploy(std::move(request));
  std::error_code ec;
  if (!deployed.ok()) {
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    return deployed.status();
  }
  if (!dir.empty()) {  // the sources of earlier versions go
    for (auto const& entry : std::filesystem::directory_iterator(home, ec)) {
      if (entry.path() != dir) std::filesystem::remove_all(entry.path(), ec);
    }
  }
  return functions_.Get(name);
}

HttpResponse FunctionsApi::Create(HttpRequest const& req, std::string const& parent, json const& body) {
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string()) {
    return ErrorResponse(InvalidArgumentError("The function needs a name: " + parent + "/functions/{id}"));
  }
  std::string name = body["name"].get<std::string>();
  if (name.rfind(parent + "/functions/", 0) != 0 ||
      !IsValidFunctionName(std::string_view(name).substr(parent.size() + 11))) {
    return ErrorResponse(InvalidArgumentError("Invalid function name \"" + name + "\": " + parent +
                                              "/functions/{id}, the id a letter, then letters, digits, '-' or '_'"));
  }
  auto request = CloudFunctionFromJson(body, name);
  if (!request.ok()) return ErrorResponse(request.status());
  if (functions_.Get(name).ok()) return ErrorResponse(AlreadyExistsError("Function " + name + " already exists"));
  if (request->source_upload_url.empty()) {
    return ErrorResponse(InvalidArgumentError("The function needs its source: sourceUploadUrl"));
  }
  auto deployed = DeployFromApi(std::move(request->spec), request->source_upload_url);
  if (!deployed.ok()) return ErrorResponse(deployed.status());
  return Operation("CREATE_FUNCTION", name, [&] {
    json f = CloudFunction(req, *deployed);
    f["@type"] = "type.googleapis.com/google.cloud.functions.v1.CloudFunction";
    return f;
  }());
}

HttpResponse FunctionsApi::Patch(HttpRequest const& req, FunctionState const& old, json const& body) {
  if (old.spec.created_by != kCreatedByFunctionsApi) return ErrorResponse(NotOwned(old));
  if (!body.is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
  std::string const name = FunctionResourceName(old.spec);
  // The function as it is, with the fields the mask names taken from the body (all the body's without a mask).
  json merged = CloudFunctionToJson(old.spec, {.base_url = base_url_(req), .hide_values = false});
  std::set<std::string> fields;
  std::string const update_mask = req.Query("updateMask");  // named: Split's views point into it
  for (auto field : Split(update_mask, ',')) {
    if (!field.empty()) fields.insert(std::string(field.substr(0, field.find('.'))));
  }
  if (fields.empty()) {
    for (auto const& [key, unused] : body.items()) fields.insert(key);
    if (fields.contains("httpsTrigger")) fields.insert("eventTrigger");
    if (fields.contains("eventTrigger")) fields.insert("httpsTrigger");
  }
  for (auto const& field : fields) {
    if (body.contains(field)) {
      merged[field] = body[field];
    } else {
      merged.erase(field);
    }
  }
  // gcloud sends back the environment it read, where Ferry showed values as "(hidden)": those keep their value.
  for (auto const& [key, values] : {std::pair{"environmentVariables", &old.spec.env_vars},
                                    std::pair{"buildEnvironmentVariables", &old.spec.build_environment_variables}}) {
    if (!merged.contains(key) || !merged[key].is_object()) continue;
    for (auto& [k, v] : merged[key].items()) {
      if (v == "(hidden)" && values->contains(k)) v = values->at(k);
    }
  }
  auto request = CloudFunctionFromJson(merged, name);
  if (!request.ok()) return ErrorResponse(request.status());
  request->spec.source_dir = old.spec.source_dir;
  request->spec.allow_unauthenticated = old.spec.allow_unauthenticated && request->spec.trigger_type == kHttpTrigger;
  std::string upload = fields.contains("sourceUploadUrl") ? request->source_upload_url : "";
  auto deployed = DeployFromApi(std::move(request->spec), upload);
  if (!deployed.ok()) return ErrorResponse(deployed.status());
  json f = CloudFunction(req, *deployed);
  f["@type"] = "type.googleapis.com/google.cloud.functions.v1.CloudFunction";
  return Operation("UPDATE_FUNCTION", name, std::move(f));
}

HttpResponse FunctionsApi::Remove(FunctionState const& old) {
  if (old.spec.created_by != kCreatedByFunctionsApi) return ErrorResponse(NotOwned(old));
  std::string const name = FunctionResourceName(old.spec);
  if (Status st = functions_.Delete(name); !st.ok()) return ErrorResponse(st);
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(sources_dir_) / old.spec.project / old.spec.region / old.spec.name,
                              ec);
  return Operation("DELETE_FUNCTION", name, {{"@type", "type.googleapis.com/google.protobuf.Empty"}});
}

HttpResponse FunctionsApi::IamPolicy(HttpRequest const& req, FunctionState const& function, bool set) {
  auto policy_of = [](bool public_access) {
    json policy{{"version", 1}, {"etag", public_access ? "BwFA" : "BwAA"}};
    if (public_access) policy["bindings"] = json::array({{{"role", kInvoker}, {"members", {"allUsers"}}}});
    return policy;
  };
  if (!set) return Reply(policy_of(function.spec.allow_unauthenticated));
  if (req.method != "POST") return MethodNotAllowed(req, "POST");
  if (function.spec.created_by != kCreatedByFunctionsApi) return ErrorResponse(NotOwned(function));
  auto body = ParseJsonText(req.body.empty() ? "{}" : req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  json const* bindings = nullptr;
  if (body->is_object() && body->contains("policy") && (*body)["policy"].is_object() &&
      (*body)["policy"].contains("bindings")) {
    bindings = &(*body)["policy"]["bindings"];
  }
  // Ferry's roles are its tokens' (docs/security.md); of a policy it takes one thing: allUsers as invoker, which
  // makes an HTTP function callable without a token. Any other binding is refused rather than ignored.
  bool public_access = false;
  if (bindings != nullptr) {
    if (!bindings->is_array()) return ErrorResponse(InvalidArgumentError("policy.bindings must be a list"));
    for (auto const& b : *bindings) {
      if (!b.is_object() || !b.contains("role") || !b.contains("members") || !b["members"].is_array()) {
        return ErrorResponse(InvalidArgumentError("Each binding needs a role and members"));
      }
      for (auto const& m : b["members"]) {
        if (b["role"] == kInvoker && m == "allUsers") {
          public_access = true;
        } else {
          return ErrorResponse(InvalidArgumentError(
              "Ferry takes one binding on a function: allUsers as " + std::string(kInvoker) +
              " (callable without a token); give people roles with ferry serve --token-file"));
        }
      }
    }
  }
  if (public_access && function.spec.trigger_type != kHttpTrigger) {
    return ErrorResponse(InvalidArgumentError("Only HTTP functions take allUsers as invoker"));
  }
  if (public_access != function.spec.allow_unauthenticated) {
    FunctionSpec spec = function.spec;
    spec.allow_unauthenticated = public_access;
    auto deployed = DeployFromApi(std::move(spec), "");
    if (!deployed.ok()) return ErrorResponse(deployed.status());
  }
  return Reply(policy_of(public_access));
}

}  // namespace ferry
