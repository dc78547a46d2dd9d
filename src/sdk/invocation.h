#pragma once

#include <string>
#include <string_view>

namespace ferry::log {
// Writes one structured line; the public Info/Warning/Error call it.
void Write(std::string_view severity, std::string_view message);
}  // namespace ferry::log

namespace ferry::sdk {

// The execution id of the invocation running on this thread, or nullptr outside one.
std::string const* CurrentExecutionId();

// Marks this thread as running one invocation for its lifetime, so log lines carry its execution id.
class InvocationScope {
 public:
  explicit InvocationScope(std::string execution_id);
  ~InvocationScope();
  InvocationScope(InvocationScope const&) = delete;
  InvocationScope& operator=(InvocationScope const&) = delete;

 private:
  std::string execution_id_;
  std::string const* previous_;
};

}  // namespace ferry::sdk
