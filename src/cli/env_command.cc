// `ferry env`: the shell exports that point gcloud and Google's client libraries at this Ferry, as
// `gcloud beta emulators pubsub env-init` does for Google's emulator. Use: eval "$(ferry env)".
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "common/status_macros.h"

namespace ferry {
namespace {

// Single-quoted for a POSIX shell.
std::string Quote(std::string const& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

void AddEnvCommand(CLI::App& app, Cli& cli, Globals const& g, Runner const& run) {
  auto* env = app.add_subcommand("env", "Print the exports that point gcloud and Google's client libraries here "
                                        "(eval \"$(ferry env)\")");
  env->callback(run([&cli, &g]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    std::string base = g.endpoint;
    if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) base = "http://" + base;
    while (!base.empty() && base.back() == '/') base.pop_back();
    bool tls = base.rfind("https://", 0) == 0;
    std::string host_port = base.substr(base.find("://") + 3);
    auto line = [](std::string const& name, std::string const& value) {
      std::cout << "export " << name << "=" << Quote(value) << "\n";
    };
    // gcloud: every API Ferry answers, and those gcloud functions deploy asks before it deploys.
    for (char const* api : {"PUBSUB", "CLOUDSCHEDULER", "CLOUDFUNCTIONS", "LOGGING", "SERVICEUSAGE", "CLOUDBUILD",
                            "CLOUDRESOURCEMANAGER"}) {
      line(std::string("CLOUDSDK_API_ENDPOINT_OVERRIDES_") + api, base + "/");
    }
    line("CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE", base + "/storage/v1/");
    line("CLOUDSDK_CORE_PROJECT", project);
    line("CLOUDSDK_FUNCTIONS_GEN2", "false");  // the guide's functions are 1st gen: gcloud goes to v1 directly
    line("CLOUDSDK_FUNCTIONS_REGION", "local");  // a deploy file's default region (gcloud's is us-central1)
    if (!g.token_file.empty()) {
      line("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", std::filesystem::absolute(g.token_file).string());
    } else if (!EnvOr("FERRY_TOKEN", "").empty()) {
      std::cout << "# FERRY_TOKEN is set: gcloud reads a token from a file; pass ferry env --token-file FILE\n";
    } else {
      line("CLOUDSDK_AUTH_DISABLE_CREDENTIALS", "true");
    }
    // Google's client libraries.
    if (tls) {
      std::cout << "# PUBSUB_EMULATOR_HOST means plaintext: with TLS, give the client library the endpoint "
                   "and a token instead (README, \"Run Ferry on a network\")\n";
    } else {
      line("PUBSUB_EMULATOR_HOST", host_port);
    }
    line("STORAGE_EMULATOR_HOST", base);
    line("PUBSUB_PROJECT_ID", project);
    line("GOOGLE_CLOUD_PROJECT", project);
    return OkStatus();
  }));
}

}  // namespace ferry
