#pragma once

#include <string_view>

namespace ferry::log {

/// Writes one structured log line to stdout, tagged with the current invocation's execution id:
/// {"severity":"INFO","message":"...","execution_id":"..."}. Ferry keeps these lines per execution
/// (`ferry logs FUNCTION`). Thread-safe; lines never interleave.
///
/// @par Example
/// @code
///   ferry::log::Info("There are " + std::to_string(n) + " practices and the DB totally works!");
/// @endcode
void Info(std::string_view message);
void Warning(std::string_view message);
void Error(std::string_view message);

}  // namespace ferry::log
