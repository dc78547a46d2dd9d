// CloudFunction bodies, as gcloud functions deploy (or anyone) sends them to create or patch a function: parsed,
// normalized, and shown again. Never a crash; what passes normalization has a runtime and a trigger Ferry runs,
// and reads back the same from its own CloudFunction form.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/cloud_function.h"
#include "model/json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  auto parsed = ferry::ParseJsonText(text);
  if (!parsed.ok()) return 0;
  auto request = ferry::CloudFunctionFromJson(*parsed, "projects/p/locations/us-central1/functions/f");
  if (!request.ok()) return 0;
  ferry::FunctionSpec spec = request->spec;
  spec.source_dir = "/src";
  if (!ferry::NormalizeFunctionSpec(spec).ok()) return 0;
  if (spec.runtime != "python3" && spec.runtime != "nodejs" && spec.runtime != "cpp") std::abort();
  auto shown = ferry::CloudFunctionToJson(spec, {.base_url = "http://h", .hide_values = false});
  (void)ferry::SafeDump(shown);
  auto again = ferry::CloudFunctionFromJson(shown, "projects/p/locations/us-central1/functions/f");
  if (!again.ok()) std::abort();
  again->spec.source_dir = "/src";
  if (!ferry::NormalizeFunctionSpec(again->spec).ok()) std::abort();
  if (again->spec.trigger_type != spec.trigger_type || again->spec.timeout_seconds != spec.timeout_seconds ||
      again->spec.env_vars != spec.env_vars || again->spec.retry != spec.retry) {
    std::abort();
  }
  return 0;
}
