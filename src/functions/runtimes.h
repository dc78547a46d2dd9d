#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// What starts an instance of a function in the `nodejs` or `python3` runtime, and what prepares one at deploy.

// The interpreter of Python functions: $FERRY_PYTHON, else the system's /usr/bin/python3 (where Debian's
// packages such as python3-django are), else python3 on the PATH.
std::string PythonInterpreter();

// The argv of a Python function's instance: Ferry's own runner (runtimes/python/ferry_runner.py, embedded in
// the binary and written under `data_dir` on first use), run by python3 in the function's source_dir.
StatusOr<std::vector<std::string>> PythonRunnerCommand(std::string const& data_dir);

// Google's Functions Framework, in a Node.js function's source_dir.
inline constexpr std::string_view kNodeFrameworkMain = "node_modules/@google-cloud/functions-framework/build/src/main.js";

// The argv of a Node.js function's instance: Google's Functions Framework from the function's node_modules, with
// Ferry's guard preloaded (written under `data_dir`), which answers 403 to a request that does not come from Ferry.
StatusOr<std::vector<std::string>> NodeFrameworkCommand(std::string const& data_dir);

// Prepares a Node.js function at deploy: `npm ci` when a package-lock.json exists and differs from the one last
// installed (a stamp in node_modules remembers it). FAILED_PRECONDITION with npm's output when it fails, or when
// the Functions Framework is not there afterwards.
Status PrepareNodeFunction(std::string const& source_dir);

}  // namespace ferry
