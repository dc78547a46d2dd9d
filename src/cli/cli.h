#pragma once

// What the `ferry` command's groups share: the client of the daemon's APIs (Cli), output helpers, and the way a
// command's body becomes its callback (Runner). Each group adds its commands in its own file:
//   serve_command.cc        ferry serve
//   pubsub_commands.cc      topics, subscriptions, publish, pull
//   function_commands.cc    deploy, functions, call, logs
//   operations_commands.cc  schedules, dead-letter
//   storage_commands.cc     cp
//   env_command.cc          env

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "ferry/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace ferry {

using Json = nlohmann::ordered_json;

// The global flags, filled in by parsing.
struct Globals {
  std::string endpoint;
  std::string project;
  std::string token_file;  // a file holding the bearer token (else FERRY_TOKEN)
  std::string format = "table";
};

std::string EnvOr(char const* name, std::string fallback);
// Percent-encodes a query value.
std::string UrlEncode(std::string const& s);
// Prints rows under upper-case headers, columns padded to their widest cell.
void PrintTable(std::vector<std::string> const& headers, std::vector<std::vector<std::string>> const& rows);
// The last part of a resource name: "bar" of "projects/p/topics/bar".
std::string Short(std::string const& name);
// Prints "ferry: error: ..." and returns the exit code 1.
int Fail(Status const& st);

// The daemon's client, as the commands use it. Connects on first use, with the token of --token-file or
// FERRY_TOKEN.
class Cli {
 public:
  explicit Cli(Globals& g) : g_(g) {}  // g is filled in by parsing, after construction

  // Sends a request; a non-2xx answer becomes its google.rpc.Status.
  StatusOr<Json> Call(std::string const& method, std::string const& target, Json const* body = nullptr);
  // A request whose body (either way) is not JSON: the answer's status and bytes.
  StatusOr<HttpResult> Raw(std::string const& method, std::string const& target, std::string const& body,
                           std::string const& content_type, HttpHeaders const& headers = {});
  // --project, or the daemon's default project.
  StatusOr<std::string> Project();
  // A short id in the default project, or a full "projects/..." name as is.
  StatusOr<std::string> Name(std::string const& id, char const* collection);
  // The admin API path of a function or job ("functions", "jobs") given by id or full name.
  StatusOr<std::string> AdminPath(std::string const& collection, std::string const& id);

  bool json_output() const { return g_.format == "json"; }
  std::string const& project_flag() const { return g_.project; }  // as given; may be empty

 private:
  Status Connect();

  Globals& g_;
  std::unique_ptr<HttpClient> client_;
};

// A describe command's output: the JSON, or its fields flattened into a FIELD/VALUE table.
void PrintDescribe(Cli& cli, Json const& j);

// Turns a command's body into its callback: when the command runs, a failure is printed and becomes the exit code.
using Runner = std::function<std::function<void()>(std::function<Status()>)>;

void AddServeCommand(CLI::App& app, int& rc);
void AddPubsubCommands(CLI::App& app, Cli& cli, Runner const& run);
void AddFunctionCommands(CLI::App& app, Cli& cli, Runner const& run);
void AddScheduleCommands(CLI::App& app, Cli& cli, Runner const& run);
void AddDeadLetterCommands(CLI::App& app, Cli& cli, Runner const& run);
void AddStorageCommands(CLI::App& app, Cli& cli, Runner const& run);
void AddEnvCommand(CLI::App& app, Cli& cli, Globals const& g, Runner const& run);

}  // namespace ferry
