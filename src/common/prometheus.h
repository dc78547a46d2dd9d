#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace ferry {

// Writes Prometheus's text exposition format (0.0.4): families with their HELP and TYPE, then their samples, label
// values escaped (backslash, double quote, newline). Every /metrics text Ferry serves is written with it.
class PrometheusWriter {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // `type`: counter, gauge or histogram.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of a family (or of a histogram's _bucket, _sum and _count series).
  void Sample(std::string_view name, Labels labels, double value);
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace ferry
