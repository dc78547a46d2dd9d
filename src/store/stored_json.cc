#include "store/stored_json.h"

#include <nlohmann/json.hpp>
#include <utility>

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

namespace {

// Reads a stored attributes object straight into the map, without building a Json value first: every message a
// lease hands out is decoded here. Anything but one flat object of strings is refused.
class AttributesReader : public nlohmann::json_sax<Json> {
 public:
  explicit AttributesReader(Attributes& out) : out_(out) {}
  bool null() override { return false; }
  bool boolean(bool) override { return false; }
  bool number_integer(number_integer_t) override { return false; }
  bool number_unsigned(number_unsigned_t) override { return false; }
  bool number_float(number_float_t, string_t const&) override { return false; }
  bool binary(binary_t&) override { return false; }
  bool start_array(std::size_t) override { return false; }
  bool end_array() override { return false; }
  bool start_object(std::size_t) override { return !std::exchange(opened_, true); }
  bool end_object() override { return true; }
  bool key(string_t& key) override {
    key_ = std::move(key);
    return true;
  }
  bool string(string_t& value) override {
    if (!opened_) return false;
    out_.insert_or_assign(std::move(key_), std::move(value));
    return true;
  }
  bool parse_error(std::size_t, std::string const&, nlohmann::detail::exception const&) override { return false; }

 private:
  Attributes& out_;
  std::string key_;
  bool opened_ = false;
};

}  // namespace

StatusOr<Attributes> DecodeAttributes(std::string const& text) {
  Attributes out;
  if (text == "{}") return out;
  AttributesReader reader(out);
  if (!Json::sax_parse(text, &reader)) return InternalError("corrupt stored attributes");
  return out;
}

}  // namespace ferry
