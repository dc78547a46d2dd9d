// The `ferry` command: `ferry serve` runs the daemon; every other command is a client of its HTTP APIs. Each group
// of commands is in its own file (cli/cli.h lists them).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/cli.h"

namespace ferry {
namespace {

int Main(int argc, char** argv) {
  CLI::App app{"Ferry: self-hosted Cloud Functions and Pub/Sub.", "ferry"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand: `ferry pull sub --format json`
  Globals g;
  g.endpoint = EnvOr("FERRY_ENDPOINT", "http://127.0.0.1:8085");
  g.project = EnvOr("FERRY_PROJECT", "");
  app.add_option("--endpoint", g.endpoint, "Ferry daemon to talk to (env FERRY_ENDPOINT)")->capture_default_str();
  app.add_option("--project", g.project, "Project for short names (env FERRY_PROJECT; default: the daemon's)");
  app.add_option("--token-file", g.token_file, "File holding the bearer token to send (else env FERRY_TOKEN)");
  app.add_option("--format", g.format, "Output: table or json")->capture_default_str()->check(CLI::IsMember({"table", "json"}));
  int rc = 0;

  AddServeCommand(app, rc);
  Cli cli(g);
  Runner run = [&rc](std::function<Status()> body) -> std::function<void()> {
    return [&rc, body] {
      Status st = body();
      if (!st.ok()) rc = Fail(st);
    };
  };
  AddPubsubCommands(app, cli, run);
  AddFunctionCommands(app, cli, run);
  AddScheduleCommands(app, cli, run);
  AddDeadLetterCommands(app, cli, run);
  AddStorageCommands(app, cli, run);
  AddEnvCommand(app, cli, g, run);

  try {
    app.parse(argc, argv);
  } catch (CLI::ParseError const& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "ferry: %s (see --help)\n", e.what());
    return 2;
  }
  return rc;
}

}  // namespace
}  // namespace ferry

int main(int argc, char** argv) { return ferry::Main(argc, argv); }
