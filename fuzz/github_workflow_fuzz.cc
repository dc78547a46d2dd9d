// A GitHub Actions workflow for ferry deploy --github-workflow: any text becomes a deploy request or one
// INVALID_ARGUMENT "FILE:LINE:COLUMN: ..." message, never a crash or an exception out of the reader, whatever its
// ${{ ... }} expressions and env values (which may refer to each other) hold.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "deploy/deploy_file.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string text(reinterpret_cast<char const*>(data), size);
  static std::map<std::string, std::string> const sets = {{"needs.setup_environment.outputs.gcp_env", "dev"},
                                                          {"needs.setup_environment.outputs.region", "us-central1"},
                                                          {"needs.setup_environment.outputs.base_name", "api"}};
  auto request = ferry::ParseGithubWorkflowText(text, "/nonexistent/.github/workflows/w.yml", "fuzz-project", sets);
  if (!request.ok() && request.status().code() != ferry::StatusCode::kInvalidArgument) std::abort();
  if (request.ok()) (void)ferry::DeployRequestToJson(*request);
  return 0;
}
