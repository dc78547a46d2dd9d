#include "functions/builder.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace ferry {
namespace fs = std::filesystem;
namespace {

bool OnPath(std::string const& program) {
  char const* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string paths = path;
  for (std::size_t start = 0; start <= paths.size();) {
    std::size_t end = paths.find(':', start);
    if (end == std::string::npos) end = paths.size();
    std::string candidate = paths.substr(start, end - start) + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// 64-bit FNV-1a: a stable digest to notice changed sources, not a security boundary.
struct Fnv1a {
  uint64_t h = 1469598103934665603ULL;
  void Add(std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
};

std::string Hex(uint64_t v) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v));
  return hex;
}

bool IsSourceFile(fs::path const& p) {
  static std::set<std::string> const kExtensions = {".cpp", ".cc",  ".cxx",  ".c",   ".h",    ".hpp", ".hh",
                                                    ".ipp", ".inl", ".cmake", ".txt", ".js",   ".mjs", ".cjs",
                                                    ".ts",  ".json", ".py",   ".cfg", ".toml", ".ini", ".sh"};
  std::string name = p.filename().string();
  return name == "Makefile" || kExtensions.contains(p.extension().string());
}

bool IsSkippedDir(std::string const& name) {
  return name.empty() || name[0] == '.' || name == "node_modules" || name == "__pycache__" || name == "build" ||
         name == "venv";
}

}  // namespace

StatusOr<CommandResult> RunCommand(ProcessOptions const& options, std::chrono::seconds timeout) {
  std::mutex mu;
  CommandResult result;
  {
    auto child = ChildProcess::Spawn(options, [&](bool, std::string line) {
      std::lock_guard lock(mu);
      result.output += line;
      result.output += '\n';
    });
    if (!child.ok()) return child.status();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!(*child)->Exited()) {
      if (std::chrono::steady_clock::now() > deadline) {
        (*child)->Kill();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    result.exit_code = (*child)->ExitCode();
  }  // destroying the child joins its readers: the output is whole
  return result;
}

StatusOr<std::string> HashSources(std::string const& dir, std::string const& salt) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return FailedPreconditionError("source_dir \"" + dir + "\" is not a directory");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory() && IsSkippedDir(it->path().filename().string())) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && IsSourceFile(it->path())) files.push_back(it->path());
  }
  if (ec) return FailedPreconditionError("cannot read source_dir \"" + dir + "\": " + ec.message());
  std::sort(files.begin(), files.end());
  Fnv1a h;
  h.Add(salt);
  for (auto const& file : files) {
    h.Add(fs::relative(file, dir).string());
    h.Add(std::string_view("\0", 1));
    std::ifstream in(file, std::ios::binary);
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) h.Add(std::string_view(buf, static_cast<std::size_t>(in.gcount())));
  }
  return Hex(h.h);
}

std::string Digest(std::string_view bytes) {
  Fnv1a h;
  h.Add(bytes);
  return Hex(h.h);
}

std::string FindSdkPackageDir() {
  if (char const* dir = std::getenv("FERRY_SDK_DIR"); dir != nullptr && *dir != '\0') return dir;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  fs::path dir = exe.parent_path().parent_path() / "lib" / "cmake" / "ferry";
  return fs::exists(dir / "ferryConfig.cmake", ec) ? dir.string() : std::string();
}

StatusOr<CppBuild> BuildCppFunction(CppBuildOptions const& o) {
  std::string sdk = FindSdkPackageDir();
  if (sdk.empty()) {
    return FailedPreconditionError("the Ferry C++ SDK package (lib/cmake/ferry) is not beside this ferry binary; "
                                   "set FERRY_SDK_DIR to its directory");
  }
  std::error_code ec;
  if (!fs::exists(fs::path(o.source_dir) / "CMakeLists.txt", ec)) {
    return FailedPreconditionError("source_dir \"" + o.source_dir +
                                   "\" has no CMakeLists.txt (a runtime: cpp function is a CMake project that "
                                   "does find_package(ferry) and links ferry::sdk)");
  }
  fs::create_directories(o.build_dir, ec);
  std::string bin_dir = (fs::path(o.build_dir) / "bin").string();
  std::vector<std::string> configure = {"cmake", "-S", o.source_dir, "-B", o.build_dir,
                                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-Dferry_DIR=" + sdk,
                                        "-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=" + bin_dir};
  if (OnPath("ninja") && !fs::exists(fs::path(o.build_dir) / "CMakeCache.txt", ec)) {
    configure.insert(configure.begin() + 1, {"-G", "Ninja"});
  }
  if (OnPath("ccache")) configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache");
  CppBuild build;
  for (auto const& argv : {configure, std::vector<std::string>{"cmake", "--build", o.build_dir}}) {
    auto run = RunCommand({.argv = argv, .working_dir = o.source_dir, .env = o.env}, o.timeout);
    if (!run.ok()) return run.status();
    build.log += run->output;
    if (run->exit_code != 0) {
      return FailedPreconditionError("building " + o.source_dir + " failed (" + argv[0] + " " + argv[1] +
                                     "):\n" + run->output);
    }
  }
  std::vector<fs::path> executables;
  for (auto const& entry : fs::directory_iterator(bin_dir, ec)) {
    if (entry.is_regular_file() && access(entry.path().c_str(), X_OK) == 0) executables.push_back(entry.path());
  }
  if (executables.empty()) return FailedPreconditionError("building " + o.source_dir + " made no executable");
  if (executables.size() > 1) {
    auto preferred = std::find_if(executables.begin(), executables.end(),
                                  [&](fs::path const& p) { return p.filename() == o.preferred_name; });
    if (preferred == executables.end()) {
      return FailedPreconditionError("building " + o.source_dir +
                                     " made several executables; name the function's one after the function");
    }
    build.executable = preferred->string();
  } else {
    build.executable = executables[0].string();
  }
  return build;
}

}  // namespace ferry
