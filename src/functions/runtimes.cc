#include "functions/runtimes.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
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

StatusOr<std::vector<std::string>> PythonRunnerCommand(std::string const& data_dir, std::string interpreter) {
  FERRY_ASSIGN_OR_RETURN(auto path, RuntimeFile(data_dir, "ferry_runner", ".py", PythonRunnerSource()));
  if (interpreter.empty()) interpreter = PythonInterpreter();
  return std::vector<std::string>{std::move(interpreter), "-u", path};
}

std::string InstalledVersion(std::string const& runtime) {
  static std::mutex mu;
  static std::map<std::string, std::string>* known = new std::map<std::string, std::string>;
  std::vector<std::string> argv;
  if (runtime == "python3") {
    argv = {PythonInterpreter(), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"};
  } else if (runtime == "nodejs") {
    argv = {"node", "-p", "process.versions.node.split('.')[0]"};
  } else {
    return "";
  }
  std::lock_guard lock(mu);
  if (auto it = known->find(argv[0]); it != known->end()) return it->second;
  std::string version;
  if (auto run = RunCommand({.argv = argv}, std::chrono::seconds(10)); run.ok() && run->exit_code == 0) {
    version = run->output.substr(0, run->output.find('\n'));
  }
  (*known)[argv[0]] = version;
  return version;
}

StatusOr<PreparedPython> PreparePythonFunction(PythonDependencies const& deps) {
  fs::path source = fs::absolute(deps.source_dir);
  fs::path requirements = source / "requirements.txt";
  std::error_code ec;
  if (!fs::is_regular_file(requirements, ec)) return PreparedPython{};
  std::string base = PythonInterpreter();
  std::string key = base + " " + InstalledVersion("python3") + "\n" + source.string() + "\n" + ReadFile(requirements);
  for (auto const& [k, v] : deps.env) key += "\n" + k + "=" + v;
  fs::path venv = fs::absolute(deps.data_dir) / "venvs" / Digest(key);
  fs::path installed = venv / ".ferry-installed";  // written last: a venv without it is half-built
  PreparedPython out{(venv / "bin" / "python").string(), ""};
  if (fs::exists(installed, ec)) return out;
  fs::remove_all(venv, ec);
  fs::create_directories(venv.parent_path(), ec);
  auto failed = [&](std::string what, CommandResult const& run) {
    fs::remove_all(venv, ec);
    if (run.exit_code == -1) what += " did not finish in " + std::to_string(deps.timeout.count()) + " s";
    if (run.output.find("No module named pip") != std::string::npos) {
      what += " (Ferry runs the system's pip in the virtual environment: install python3-pip)";
    }
    return FailedPreconditionError(what + ":\n" + run.output);
  };
  // --without-pip: the system's pip, seen through the system site packages, installs into the environment; a
  // copy of pip per environment (ensurepip) would add 3 s to each.
  FERRY_ASSIGN_OR_RETURN(auto made, RunCommand({.argv = {base, "-m", "venv", "--system-site-packages", "--without-pip",
                                                         venv.string()},
                                                .working_dir = source.string(),
                                                .build = true},
                                               deps.timeout));
  if (made.exit_code != 0) return failed("creating a virtual environment (" + base + " -m venv) failed", made);
  FERRY_ASSIGN_OR_RETURN(auto pip, RunCommand({.argv = {out.interpreter, "-m", "pip", "install", "--no-input",
                                                        "--disable-pip-version-check", "--progress-bar", "off", "-r",
                                                        requirements.string()},
                                               .working_dir = source.string(),
                                               .env = deps.env,
                                               .build = true},
                                              deps.timeout));
  if (pip.exit_code != 0) return failed("pip install -r " + requirements.string() + " failed", pip);
  std::ofstream(installed, std::ios::binary) << "ok\n";
  out.log = std::move(pip.output);
  return out;
}

void RemoveUnusedVenvs(std::string const& data_dir, std::vector<std::string> const& in_use) {
  std::error_code ec;
  fs::path root = fs::absolute(data_dir) / "venvs";
  std::vector<fs::path> unused;
  for (auto const& entry : fs::directory_iterator(root, ec)) {
    std::string prefix = entry.path().string() + "/";
    if (std::none_of(in_use.begin(), in_use.end(), [&](std::string const& p) { return p.rfind(prefix, 0) == 0; })) {
      unused.push_back(entry.path());
    }
  }
  for (auto const& path : unused) fs::remove_all(path, ec);
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
      npm.build = true;
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
