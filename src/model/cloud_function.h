#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "ferry/status.h"
#include "model/function_spec.h"

namespace ferry {

// Cloud Functions v1's CloudFunction resource (google/cloud/functions/v1/functions.proto) and Ferry's FunctionSpec,
// both ways, for gcloud functions deploy and describe.

struct CloudFunctionOptions {
  std::string base_url;     // "http://host:port": httpsTrigger.url is {base_url}/projects/.../functions/{id}
  bool hide_values = true;  // environment values as "(hidden)", as everywhere Ferry shows a function
};

// A function as a CloudFunction (without "status", which is how it runs, not what it is).
nlohmann::json CloudFunctionToJson(FunctionSpec const& spec, CloudFunctionOptions const& options);

// What a create or patch asks for: the function (everything but its source_dir, with created_by set to
// kCreatedByFunctionsApi and not yet normalized) and where its source was uploaded.
struct CloudFunctionRequest {
  FunctionSpec spec;
  std::string source_upload_url;
};

// Reads a CloudFunction body for the function `name` ("projects/{p}/locations/{r}/functions/{id}"; the body's own
// name, if any, must be the same). Strict like Google's API: an unknown field, a wrong type, a runtime or event
// type Ferry does not run, or a source other than an upload is INVALID_ARGUMENT in words gcloud prints. Settings
// that mean nothing on one machine (service account, VPC connector, ingress, docker registry) are accepted.
StatusOr<CloudFunctionRequest> CloudFunctionFromJson(nlohmann::json const& body, std::string const& name);

}  // namespace ferry
