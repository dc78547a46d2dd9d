#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

// A subscription filter in Pub/Sub's filter language (https://cloud.google.com/pubsub/docs/subscription-message-filter):
//   attributes.KEY = "v"   attributes.KEY != "v"   attributes:KEY   hasPrefix(attributes.KEY, "p")
// combined with NOT (or "-"), AND, OR and parentheses. KEY is a bare name or a quoted string. As Google requires,
// AND and OR may not be mixed without parentheses, and a filter is at most 256 bytes.
class Filter {
 public:
  // INVALID_ARGUMENT naming the position of the first error.
  static StatusOr<Filter> Parse(std::string_view text);
  // The empty filter matches every message.
  [[nodiscard]] bool Matches(Attributes const& attributes) const;

  struct Node;

 private:
  std::shared_ptr<Node const> root_;  // null: the empty filter
};

inline constexpr std::size_t kMaxFilterBytes = 256;

}  // namespace ferry
