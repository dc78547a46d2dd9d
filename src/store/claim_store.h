#pragma once

#include <cstdint>
#include <string>

#include "ferry/status.h"

namespace ferry {

// Named leases on work that one node at a time does among nodes sharing a database: delivering a function's
// events (so its max_instances holds across the cluster), watching a bucket. A node holds a claim until it lets
// go or stops renewing it; a node that dies loses its claims when they run out, and another takes them.
class ClaimStore {
 public:
  virtual ~ClaimStore() = default;
  // Takes or renews claim `name` for `node` until `until_ms`, unless another node holds it past `now_ms`.
  // Returns whether `node` holds it now.
  [[nodiscard]] virtual StatusOr<bool> Claim(std::string const& name, std::string const& node, int64_t now_ms,
                                             int64_t until_ms) = 0;
  // Lets go of a claim `node` holds (nothing when it holds none).
  [[nodiscard]] virtual Status Release(std::string const& name, std::string const& node) = 0;
};

}  // namespace ferry
