#include "ferry/json.h"

#include <nlohmann/json.hpp>

namespace ferry {

struct Json::Impl {
  nlohmann::json value;
};

Json::Json() {
  static auto const null = std::make_shared<Impl const>();
  impl_ = null;
}
Json::Json(std::shared_ptr<Impl const> impl) : impl_(std::move(impl)) {}
Json::~Json() = default;
Json::Json(Json const&) = default;
Json& Json::operator=(Json const&) = default;
Json::Json(Json&&) noexcept = default;
Json& Json::operator=(Json&&) noexcept = default;

Json Json::Parse(std::string_view text) {
  auto impl = std::make_shared<Impl>();
  impl->value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (impl->value.is_discarded()) return Json();
  return Json(std::move(impl));
}

bool Json::IsNull() const { return impl_->value.is_null(); }
bool Json::IsObject() const { return impl_->value.is_object(); }
bool Json::IsArray() const { return impl_->value.is_array(); }
bool Json::IsString() const { return impl_->value.is_string(); }
bool Json::IsNumber() const { return impl_->value.is_number(); }
bool Json::IsBool() const { return impl_->value.is_boolean(); }

bool Json::Contains(std::string_view key) const {
  return impl_->value.is_object() && impl_->value.contains(key);
}

std::size_t Json::size() const {
  return impl_->value.is_object() || impl_->value.is_array() ? impl_->value.size() : 0;
}

std::vector<std::string> Json::Keys() const {
  std::vector<std::string> keys;
  if (impl_->value.is_object()) {
    for (auto const& [k, v] : impl_->value.items()) keys.push_back(k);
  }
  return keys;
}

Json Json::operator[](std::string_view key) const {
  if (!Contains(key)) return Json();
  auto impl = std::make_shared<Impl>();
  impl->value = impl_->value.at(std::string(key));
  return Json(std::move(impl));
}

Json Json::operator[](std::size_t index) const {
  if (!impl_->value.is_array() || index >= impl_->value.size()) return Json();
  auto impl = std::make_shared<Impl>();
  impl->value = impl_->value.at(index);
  return Json(std::move(impl));
}

std::string Json::AsString(std::string fallback) const {
  return impl_->value.is_string() ? impl_->value.get<std::string>() : fallback;
}
int64_t Json::AsInt(int64_t fallback) const {
  return impl_->value.is_number() ? impl_->value.get<int64_t>() : fallback;
}
double Json::AsDouble(double fallback) const {
  return impl_->value.is_number() ? impl_->value.get<double>() : fallback;
}
bool Json::AsBool(bool fallback) const { return impl_->value.is_boolean() ? impl_->value.get<bool>() : fallback; }

std::string Json::Dump() const {
  return impl_->value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace ferry
