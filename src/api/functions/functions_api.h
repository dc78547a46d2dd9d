#pragma once

#include <string_view>

#include "api/http_server.h"
#include "control/function_service.h"

namespace ferry {

// Cloud Functions v1 (1st gen, the guide's) over REST, as `gcloud functions list / describe / call` use it, on
// the functions Ferry runs:
//   GET  /v1/projects/{p}/locations                                  the regions with functions
//   GET  /v1/projects/{p}/locations/{r|-}/functions                  list
//   GET  /v1/projects/{p}/locations/{r}/functions/{f}                get (a CloudFunction)
//   POST /v1/projects/{p}/locations/{r}/functions/{f}:call           {data} -> {executionId, result | error}
//   GET  /v2/projects/{p}/locations/{r}/functions/{f}                gcloud's first look: environment GEN_1
//   GET  /v2/projects/{p}/locations/-/functions                      no 2nd-gen functions
//   GET  /v2/projects/{p}/locations/{r}/runtimes                     the runtimes Ferry runs
// Deploying, changing and deleting through this API (gcloud functions deploy / delete) are not served yet: they
// answer UNIMPLEMENTED, naming ferry deploy. Environment values are shown as "(hidden)", as everywhere in Ferry.
class FunctionsApi {
 public:
  explicit FunctionsApi(FunctionService& functions) : functions_(functions) {}
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);

 private:
  FunctionService& functions_;
};

}  // namespace ferry
