#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

/// A read-only JSON value: an event's data parsed, or part of it.
///
/// @par Example
/// @code
///   ferry::Json order = event.data_json();
///   std::string id = order["id"].AsString();
///   int64_t qty = order["items"][0]["qty"].AsInt();
/// @endcode
/// Lookups never throw: a missing key or index gives a null value, and As*() of the wrong type gives the
/// fallback.
class Json {
 public:
  Json();  // null
  ~Json();
  Json(Json const&);
  Json& operator=(Json const&);
  Json(Json&&) noexcept;
  Json& operator=(Json&&) noexcept;

  /// Parses text; invalid JSON gives a null value.
  static Json Parse(std::string_view text);

  [[nodiscard]] bool IsNull() const;
  [[nodiscard]] bool IsObject() const;
  [[nodiscard]] bool IsArray() const;
  [[nodiscard]] bool IsString() const;
  [[nodiscard]] bool IsNumber() const;
  [[nodiscard]] bool IsBool() const;
  [[nodiscard]] bool Contains(std::string_view key) const;
  [[nodiscard]] std::size_t size() const;  // members of an object, items of an array, else 0
  [[nodiscard]] std::vector<std::string> Keys() const;

  Json operator[](std::string_view key) const;
  Json operator[](std::size_t index) const;

  [[nodiscard]] std::string AsString(std::string fallback = {}) const;
  [[nodiscard]] int64_t AsInt(int64_t fallback = 0) const;
  [[nodiscard]] double AsDouble(double fallback = 0) const;
  [[nodiscard]] bool AsBool(bool fallback = false) const;
  /// Compact JSON text.
  [[nodiscard]] std::string Dump() const;

 private:
  struct Impl;
  explicit Json(std::shared_ptr<Impl const> impl);
  std::shared_ptr<Impl const> impl_;  // immutable, so copies share it
};

}  // namespace ferry
