#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "api/functions/source_uploads.h"
#include "api/http_server.h"
#include "control/function_service.h"

namespace ferry {

// Cloud Functions v1 (1st gen, the guide's) over REST, as gcloud functions uses it, on the functions Ferry runs:
//   GET    /v1/projects/{p}/locations                               the regions with functions
//   GET    /v1/projects/{p}/locations/{r|-}/functions               list
//   POST   /v1/projects/{p}/locations/{r}/functions                 create (gcloud functions deploy of a new one)
//   POST   /v1/projects/{p}/locations/{r}/functions:generateUploadUrl   where to PUT the source zip
//   PUT    /upload/functions/{id}.zip                               that upload (its random id is the permission)
//   GET    /v1/projects/{p}/locations/{r}/functions/{f}             get (a CloudFunction)
//   PATCH  /v1/projects/{p}/locations/{r}/functions/{f}?updateMask= change (a deploy of an existing one)
//   DELETE /v1/projects/{p}/locations/{r}/functions/{f}             delete
//   POST   /v1/projects/{p}/locations/{r}/functions/{f}:call        {data} -> {executionId, result | error}
//   GET|POST .../functions/{f}:getIamPolicy, POST :setIamPolicy    allUsers as invoker = allow_unauthenticated
//   GET    /v1/operations/{id}                                      a deploy's or delete's operation (done)
//   GET    /v2/projects/{p}/locations/{r}/functions/{f}             gcloud's first look: environment GEN_1
//   GET    /v2/projects/{p}/locations/-/functions                   no 2nd-gen functions
//   GET    /v2/projects/{p}/locations/{r}/runtimes                  the runtimes Ferry runs
// and the look-ups gcloud functions deploy makes on other APIs first, answered as a project with everything on:
//   GET    /v1/projects/{p}/services/{service}                      Service Usage: ENABLED
//   GET    /v1/projects/{p}/locations/{r}/defaultServiceAccount     Cloud Build's service account
//   GET    /v1/projects/{p}                                         Resource Manager: the project
// A create or patch deploys at once (the source unpacked, built and started) and answers its operation done, so
// gcloud waits no longer than Ferry works. Only functions made this way are changed or deleted here; a deploy
// file's are read-only (FAILED_PRECONDITION), as gcloud's are to a deploy file (docs/gcloud.md). Environment values
// are shown as "(hidden)"; a patch that sends "(hidden)" back keeps the value.
class FunctionsApi {
 public:
  // `data_dir`: uploads and unpacked sources go under it. `base_url`: how the client reaches this server
  // ("http://host:port"), for upload URLs and httpsTrigger.url.
  FunctionsApi(FunctionService& functions, std::string const& data_dir,
               std::function<std::string(HttpRequest const&)> base_url);
  static bool Serves(std::string_view path);
  // The body limit for a request to `target` (HttpServerOptions::body_limit_for): a source zip's size (100 MiB)
  // for an upload URL that waits for its upload, `otherwise` for anything else, so that no one without an upload
  // id can make the server hold more than it holds for any request.
  std::size_t BodyLimit(std::string_view target, std::size_t otherwise);
  HttpResponse Handle(HttpRequest const& request);

 private:
  HttpResponse Create(HttpRequest const& req, std::string const& parent, nlohmann::json const& body);
  HttpResponse Patch(HttpRequest const& req, FunctionState const& old, nlohmann::json const& body);
  HttpResponse Remove(FunctionState const& old);
  HttpResponse IamPolicy(HttpRequest const& req, FunctionState const& function, bool set);
  // Unpacks the uploaded zip into a new directory for function `spec`, and deploys it; the previous sources go.
  StatusOr<FunctionState> DeployFromApi(FunctionSpec spec, std::string const& upload_url);
  nlohmann::json CloudFunction(HttpRequest const& req, FunctionState const& f) const;
  HttpResponse Operation(std::string const& type, std::string const& target, nlohmann::json response);

  FunctionService& functions_;
  std::string const sources_dir_;  // {data_dir}/function-sources/{project}/{region}/{id}/{upload id}
  std::function<std::string(HttpRequest const&)> const base_url_;
  SourceUploads uploads_;
  std::mutex ops_mu_;
  std::map<std::string, std::string> ops_;  // GUARDED_BY(ops_mu_): operation id -> its JSON, the newest 1000
  std::deque<std::string> ops_order_;       // GUARDED_BY(ops_mu_)
};

}  // namespace ferry
