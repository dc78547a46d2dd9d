// ferry.yaml: any text becomes a deploy request or one INVALID_ARGUMENT "FILE:LINE:COLUMN: ..." message, never a
// crash or an exception out of the reader.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "deploy/deploy_file.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string text(reinterpret_cast<char const*>(data), size);
  auto request = ferry::ParseDeployText(text, "/nonexistent/ferry.yaml", "fuzz-project");
  if (!request.ok() && request.status().code() != ferry::StatusCode::kInvalidArgument) std::abort();
  if (request.ok()) (void)ferry::DeployRequestToJson(*request);
  return 0;
}
