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

namespace {

// A file of the data directory's runtimes/ with this content, written once per content: a newer Ferry adds its
// own, and a running instance keeps the file it opened.
StatusOr<std::string> RuntimeFile(std::string const& data_dir, std::string const& stem, std::string const& extension,
                                  std::string_view source) {
  fs::path dir = fs::absolute(data_dir) / "runtimes";
  fs::path path = dir / (stem + "_" + Digest(source) + extension);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::create_directories(dir, ec);
    fs::path tmp = path;
    tmp += ".tmp";
    std::ofstream(tmp, std::ios::binary) << source;
    fs::rename(tmp, path, ec);
    if (ec) return UnavailableError("cannot write " + path.string() + ": " + ec.message());
  }
  return path.string();
}

// Preloaded into Google's Functions Framework (node --require): a request without the instance's secret (see
// kInstanceSecretHeader) is answered 403 before the framework sees it, and the header is hidden from the function.
constexpr std::string_view kNodeGuard = R"JS('use strict';
// Written by Ferry: this instance serves Ferry only (X-Ferry-Instance-Secret).
const http = require('node:http');
const crypto = require('node:crypto');
const secret = Buffer.from(process.env.FERRY_INSTANCE_SECRET || '');
if (secret.length > 0) {
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event, req, res) {
    if (event === 'request') {
      const given = Buffer.from(String(req.headers['x-ferry-instance-secret'] || ''));
      delete req.headers['x-ferry-instance-secret'];
      if (given.length !== secret.length || !crypto.timingSafeEqual(given, secret)) {
        res.statusCode = 403;
        res.end('Forbidden: this instance serves Ferry only\n');
        return true;
      }
    }
    return emit.apply(this, arguments);
  };
}
)JS";

}  // namespace

StatusOr<std::vector<std::string>> PythonRunnerCommand(std::string const& data_dir) {
  FERRY_ASSIGN_OR_RETURN(auto path, RuntimeFile(data_dir, "ferry_runner", ".py", PythonRunnerSource()));
  return std::vector<std::string>{PythonInterpreter(), "-u", path};
}

StatusOr<std::vector<std::string>> NodeFrameworkCommand(std::string const& data_dir) {
  FERRY_ASSIGN_OR_RETURN(auto guard, RuntimeFile(data_dir, "ferry_node_guard", ".js", kNodeGuard));
  return std::vector<std::string>{"node", "--require", guard, std::string(kNodeFrameworkMain)};
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
  if (!fs::exists(dir / kNodeFrameworkMain, ec)) {
    return FailedPreconditionError("a nodejs function needs @google-cloud/functions-framework in " + source_dir +
                                   "/node_modules (list it in package.json with a package-lock.json, and deploy "
                                   "runs npm ci)");
  }
  return OkStatus();
}

}  // namespace ferry
