#pragma once

#include <chrono>
#include <map>
#include <string_view>
#include <string>

#include "ferry/status.h"
#include "functions/child_process.h"

namespace ferry {

struct CommandResult {
  int exit_code = -1;  // -1 when killed or timed out
  std::string output;  // stdout and stderr, interleaved by line
};
// Runs a program to completion, or kills it after `timeout`.
StatusOr<CommandResult> RunCommand(ProcessOptions const& options, std::chrono::seconds timeout);

// A digest (16 hex digits) of a function's sources: the paths and contents of the code files under `dir` (by
// extension; build output, dependencies, hidden and data files such as an SQLite database are left out, so
// running a function does not change its digest), plus `salt` (the build settings).
StatusOr<std::string> HashSources(std::string const& dir, std::string const& salt);

// 16 hex digits of a stable 64-bit digest (FNV-1a) of `bytes`: names build directories, notices changes.
std::string Digest(std::string_view bytes);

// Where the SDK's CMake package is: $FERRY_SDK_DIR, or lib/cmake/ferry beside the directory of the running
// ferry binary (the build tree and the installed layout are alike). Empty when there is none.
std::string FindSdkPackageDir();

struct CppBuildOptions {
  std::string source_dir;  // a CMake project that does find_package(ferry) and builds one executable
  std::string build_dir;   // kept between builds, so only changed sources are compiled again
  std::map<std::string, std::string> env;  // build_environment_variables
  std::string preferred_name;              // picks the executable when the project builds several
  std::chrono::seconds timeout{600};
};
struct CppBuild {
  std::string executable;
  std::string log;
};
// Configures and builds a `runtime: cpp` function with CMake (Ninja and ccache when present) against the SDK.
// FAILED_PRECONDITION with the build's output when it fails.
StatusOr<CppBuild> BuildCppFunction(CppBuildOptions const& options);

}  // namespace ferry
