#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// A Cloud Logging filter (the Logging query language), the subset `gcloud functions logs read` and people write
// by hand use: comparisons `FIELD OP VALUE` with OP one of = != : >= <= > <, values quoted or bare, fields as dotted
// paths (a part may be quoted: labels."goog-managed-by"); AND (or juxtaposition), OR, NOT (or -), parentheses.
// `severity` compares by level (DEBUG < INFO < ... < EMERGENCY) and `timestamp` as a time; `:` is "has" (a
// case-insensitive substring); a field an entry lacks matches only `!=`. Bounded: at most 8 KiB of text and
// 32 levels of nesting; anything else is INVALID_ARGUMENT naming where.
class LogFilter {
 public:
  // A field's value in the entry being matched, or nullopt when it has none.
  using Fields = std::function<std::optional<std::string>(std::string const& path)>;

  static StatusOr<LogFilter> Parse(std::string_view text);
  LogFilter(LogFilter&&) noexcept;
  LogFilter& operator=(LogFilter&&) noexcept;
  ~LogFilter();

  bool Matches(Fields const& fields) const;

  struct Node;

 private:
  explicit LogFilter(std::unique_ptr<Node> root);
  std::unique_ptr<Node> root_;  // null: the empty filter, which matches everything
};

// Cloud Logging's severities as numbers (DEFAULT 0, DEBUG 100, ... EMERGENCY 800); -1 for an unknown name.
int SeverityNumber(std::string_view name);

}  // namespace ferry
