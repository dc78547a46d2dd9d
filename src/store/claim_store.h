#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// What a node tells the others of itself (a JSON object), until it runs out.
struct NodeReport {
  std::string node;
  std::string status;
};

// Named leases on work that one node at a time does among nodes sharing a database: running one of a function's
// max_instances x concurrency executions (so the limit holds across the cluster), watching a bucket. A node holds a claim until it lets
// go or stops renewing it; a node that dies loses its claims when they run out, and another takes them.
class ClaimStore {
 public:
  virtual ~ClaimStore() = default;
  // Takes or renews claim `name` for `node` until `until_ms`, unless another node holds it past `now_ms`.
  // Returns whether `node` holds it now.
  [[nodiscard]] virtual StatusOr<bool> Claim(std::string const& name, std::string const& node, int64_t now_ms,
                                             int64_t until_ms) = 0;
  // Takes the first of claims `prefix`0 .. `prefix`(count - 1) that nobody holds past `now_ms`, for `node` until
  // `until_ms`: a slot of a limit the cluster shares. Returns its name, or nullopt when every one is held.
  [[nodiscard]] virtual StatusOr<std::optional<std::string>> ClaimOne(std::string const& prefix, int count,
                                                                      std::string const& node, int64_t now_ms,
                                                                      int64_t until_ms) = 0;
  // How many claims named `prefix`... are held past `now_ms` (a read: how many of a limit's slots are taken).
  [[nodiscard]] virtual StatusOr<int> CountClaims(std::string const& prefix, int64_t now_ms) = 0;
  // Renews, in one transaction, each of `names` that `node` still holds (as Claim would). Returns the ones it no
  // longer holds: they ran out and another node took them.
  [[nodiscard]] virtual StatusOr<std::vector<std::string>> RenewClaims(std::vector<std::string> const& names,
                                                                       std::string const& node, int64_t now_ms,
                                                                       int64_t until_ms) = 0;
  // Lets go of a claim `node` holds (nothing when it holds none).
  [[nodiscard]] virtual Status Release(std::string const& name, std::string const& node) = 0;
  // Records what `node` tells of itself, good until `until_ms` (renewed by the next report).
  [[nodiscard]] virtual Status ReportNode(std::string const& node, std::string const& status, int64_t until_ms) = 0;
  // The reports of the nodes whose last report has not run out at `now_ms`, by node name.
  [[nodiscard]] virtual StatusOr<std::vector<NodeReport>> LiveNodes(int64_t now_ms) = 0;
};

}  // namespace ferry
