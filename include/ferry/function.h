#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/context.h"
#include "ferry/event.h"
#include "ferry/log.h"

namespace ferry {

/// An HTTP request to an HTTP-triggered function.
struct Request {
  std::string method;
  std::string path;   // without the query
  std::string query;  // the raw query string, without '?'
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

/// What an HTTP-triggered function answers.
struct Response {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
};

/// A background function: returns normally on success; throws to fail (the event is retried when the
/// function's trigger retries).
using EventFunction = std::function<void(Event const&, Context const&)>;
/// An HTTP function. Throwing answers 500.
using HttpFunction = std::function<Response(Request const&)>;

/// The table of entry points a program exports. `FUNCTION_TARGET` picks the one an instance serves.
///
/// @par Example: the one entrypoint file, main.cpp
/// @code
///   #include <ferry/function.h>
///   #include "core/cloud_functions/bar.h"
///
///   int main(int argc, char** argv) {
///     app::Setup();  // configuration, database connection: once per instance
///     return ferry::Run(argc, argv, ferry::Functions().Event("bar", bar));
///   }
/// @endcode
class Functions {
 public:
  Functions();
  ~Functions();
  Functions(Functions&&) noexcept;
  Functions& operator=(Functions&&) noexcept;

  /// A background (event) function, called as (event, context). CloudEvents reach it too.
  Functions& Event(std::string name, EventFunction fn);
  /// An HTTP function.
  Functions& Http(std::string name, HttpFunction fn);

  struct Impl;
  [[nodiscard]] Impl const& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// Serves the function named by FUNCTION_TARGET on $PORT with the Functions Framework HTTP contract, until
/// SIGTERM or SIGINT. Each call is wrapped as "Started NAME! Event: ..., Context: ..." before and
/// "Completed NAME!" after; an exception is logged with the execution id and answered as a failure.
/// Returns the process exit code (non-zero when the target is unknown or the port cannot be bound).
int Run(int argc, char** argv, Functions const& functions);

}  // namespace ferry
