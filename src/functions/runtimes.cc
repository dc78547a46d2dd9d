#include "functions/runtimes.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/status_macros.h"
#include "functions/builder.h"

namespace ferry {

std::string_view PythonRunnerSource();  // generated from runtimes/python/ferry_runner.py

namespace {

namespace fs = std::filesystem;

std::string ReadFile(fs::path const& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

std::string PythonInterpreter() {
  if (char const* python = std::getenv("FERRY_PYTHON"); python != nullptr && *python != '\0') return python;
  std::error_code ec;
  return fs::exists("/usr/bin/python3", ec) ? "/usr/bin/python3" : "python3";
}

StatusOr<std::vector<std::string>> PythonRunnerCommand(std::string const& data_dir) {
  // Written once per content: a newer Ferry replaces it; a running instance keeps the file it opened.
  std::string_view source = PythonRunnerSource();
  fs::path dir = fs::absolute(data_dir) / "runtimes";
  fs::path path = dir / ("ferry_runner_" + Digest(source) + ".py");
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::create_directories(dir, ec);
    fs::path tmp = path;
    tmp += ".tmp";
    std::ofstream(tmp, std::ios::binary) << source;
    fs::rename(tmp, path, ec);
    if (ec) return UnavailableError("cannot write the Python runner to " + path.string() + ": " + ec.message());
  }
  return std::vector<std::string>{PythonInterpreter(), "-u", path.string()};
}

std::vector<std::string> NodeFrameworkCommand() {
  return {"node", "node_modules/@google-cloud/functions-framework/build/src/main.js"};
}

Status PrepareNodeFunction(std::string const& source_dir) {
  fs::path dir = source_dir;
  fs::path lock = dir / "package-lock.json";
  fs::path stamp = dir / "node_modules" / ".ferry-npm-ci";
  std::error_code ec;
  if (fs::exists(lock, ec)) {
    std::string want = Digest(ReadFile(lock));
    if (!fs::exists(stamp, ec) || ReadFile(stamp) != want) {
      ProcessOptions npm;
      npm.argv = {"npm", "ci", "--no-audit", "--no-fund"};
      npm.working_dir = source_dir;
      FERRY_ASSIGN_OR_RETURN(auto result, RunCommand(npm, std::chrono::seconds(600)));
      if (result.exit_code != 0) {
        return FailedPreconditionError("npm ci in " + source_dir + " failed (exit " +
                                       std::to_string(result.exit_code) + "):\n" + result.output);
      }
      std::ofstream(stamp, std::ios::binary) << want;
    }
  }
  if (!fs::exists(dir / NodeFrameworkCommand()[1], ec)) {
    return FailedPreconditionError("a nodejs function needs @google-cloud/functions-framework in " + source_dir +
                                   "/node_modules (list it in package.json with a package-lock.json, and deploy "
                                   "runs npm ci)");
  }
  return OkStatus();
}

}  // namespace ferry
