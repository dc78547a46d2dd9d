// JSON request bodies: Ferry's nesting pre-scan and nlohmann's parse behind it (ParseJsonText), and what the REST
// layer and the admin API's deploy do with a parsed body. Never a crash; text the scan refuses, the parse refuses too; and what parses is
// dumped without throwing, whatever bytes its strings hold. And the store's attributes reader (DecodeAttributes):
// what it accepts comes back the same through EncodeAttributes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/json_depth.h"
#include "model/deploy_request.h"
#include "model/json_codec.h"
#include "store/stored_json.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  std::string_view text(reinterpret_cast<char const*>(data), size);
  bool shallow = ferry::JsonNestingWithin(text);
  auto parsed = ferry::ParseOrderedJsonText(text);
  if (!shallow && parsed.ok()) std::abort();  // deeper than the limit must never reach a tree
  if (parsed.ok()) {
    (void)ferry::SafeDump(*parsed);
    (void)ferry::SubscriptionFromJson(*parsed);
    (void)ferry::TopicFromJson(*parsed);
    (void)ferry::MessageFromJson(*parsed);
  }
  if (auto plain = ferry::ParseJsonText(text); plain.ok()) {
    auto request = ferry::DeployRequestFromJson(*plain, "p");
    if (request.ok()) (void)ferry::DeployRequestToJson(*request).dump();
  }
  if (auto attrs = ferry::DecodeAttributes(std::string(text)); attrs.ok()) {
    auto again = ferry::DecodeAttributes(ferry::EncodeAttributes(*attrs));
    if (!again.ok() || *again != *attrs) std::abort();
  }
  return 0;
}
