#include "store/stored_json.h"

#include <nlohmann/json.hpp>

#include "common/status_macros.h"

namespace ferry {

StatusOr<Json> ParseStoredJson(std::string const& text) {
  try {
    return Json::parse(text);
  } catch (std::exception const& e) {
    return InternalError(std::string("corrupt stored json: ") + e.what());
  }
}

StatusOr<Subscription> DecodeSub(std::string const& text) {
  FERRY_ASSIGN_OR_RETURN(auto json, ParseStoredJson(text));
  return SubscriptionFromJson(json);
}

StatusOr<Topic> DecodeTopic(std::string const& text) {
  FERRY_ASSIGN_OR_RETURN(auto json, ParseStoredJson(text));
  return TopicFromJson(json);
}

std::string EncodeAttributes(Attributes const& attrs) {
  if (attrs.empty()) return "{}";
  Json j = Json::object();
  for (auto const& [k, v] : attrs) j[k] = v;
  return SafeDump(j);
}

StatusOr<Attributes> DecodeAttributes(std::string const& text) {
  if (text == "{}") return Attributes{};
  FERRY_ASSIGN_OR_RETURN(auto json, ParseStoredJson(text));
  Attributes out;
  for (auto const& [k, v] : json.items()) out.emplace(k, v.get<std::string>());
  return out;
}

}  // namespace ferry
