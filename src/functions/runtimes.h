#pragma once

#include <chrono>
#include <map>
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
// the binary and written under `data_dir` on first use), run by `interpreter` (empty: PythonInterpreter()) in the
// function's source_dir.
StatusOr<std::vector<std::string>> PythonRunnerCommand(std::string const& data_dir, std::string interpreter = "");

// The interpreter's "major.minor" ("3.11" for python3, "20" for node's major), asked once per program; "" when it
// does not answer. The deploy plan compares it with the version a Cloud Functions runtime name asks for.
std::string InstalledVersion(std::string const& runtime);

struct PythonDependencies {
  std::string source_dir;
  std::string data_dir;                   // the virtual environments live in its venvs/
  std::map<std::string, std::string> env; // build_environment_variables (PIP_INDEX_URL, PIP_FIND_LINKS, ...)
  std::chrono::seconds timeout{600};
};
struct PreparedPython {
  std::string interpreter;  // the virtual environment's python, or "" (no requirements.txt: the system's)
  std::string log;          // pip's output, when it ran
};
// Prepares a Python function at deploy, as Cloud Functions does with its requirements.txt: a virtual environment
// that sees the system's site packages (so Debian's python3-django satisfies "django" without a download), where
// pip installs the rest. One per interpreter, source_dir, requirements and build settings, kept and reused while
// they are unchanged. pip gets the daemon's PIP_* settings and the function's build environment, and resolves
// relative paths (--find-links wheels/) from source_dir. FAILED_PRECONDITION with pip's output when it fails.
StatusOr<PreparedPython> PreparePythonFunction(PythonDependencies const& deps);

// Google's Functions Framework, in a Node.js function's source_dir.
inline constexpr std::string_view kNodeFrameworkMain = "node_modules/@google-cloud/functions-framework/build/src/main.js";

// The argv of a Node.js function's instance: Google's Functions Framework from the function's node_modules, with
// Ferry's guard preloaded (written under `data_dir`), which answers 403 to a request that does not come from Ferry.
StatusOr<std::vector<std::string>> NodeFrameworkCommand(std::string const& data_dir);

// Prepares a Node.js function at deploy: `npm ci` when a package-lock.json exists and differs from the one last
// installed (a stamp in node_modules remembers it). FAILED_PRECONDITION with npm's output when it fails, or when
// the Functions Framework is not there afterwards.
Status PrepareNodeFunction(std::string const& source_dir);

// Removes the virtual environments under data_dir/venvs/ that no function uses (`in_use`: their interpreters).
void RemoveUnusedVenvs(std::string const& data_dir, std::vector<std::string> const& in_use);

}  // namespace ferry
