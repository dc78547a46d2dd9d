#include "common/prometheus.h"

#include <cstdio>

namespace ferry {

void PrometheusWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ");
  out_.append(type).append("\n");
}

void PrometheusWriter::Sample(std::string_view name, Labels labels, double value) {
  out_.append(name);
  if (labels.size() > 0) {
    char sep = '{';
    for (auto const& [label, text] : labels) {
      out_ += sep;
      sep = ',';
      out_.append(label).append("=\"");
      for (char c : text) {
        if (c == '\n') {
          out_ += "\\n";
          continue;
        }
        if (c == '\\' || c == '"') out_ += '\\';
        out_ += c;
      }
      out_ += '"';
    }
    out_ += '}';
  }
  char num[64];
  std::snprintf(num, sizeof num, " %.17g\n", value);
  out_ += num;
}

}  // namespace ferry
