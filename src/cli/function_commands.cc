// `ferry deploy`, `functions`, `call` and `logs`: the functions' commands, over the admin API.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "common/status_macros.h"
#include "deploy/deploy_file.h"

namespace ferry {
namespace {

struct FunctionState {
  std::string deploy_file, one_id, call_data, execution_id;
  std::string github_workflow;             // ferry deploy --github-workflow
  std::vector<std::string> workflow_sets;  // its --set EXPRESSION=VALUE
  std::string env_vars_file;               // its --env-vars-file
  bool dry_run = false, follow = false;
  int log_limit = 100;
};

}  // namespace

void AddFunctionCommands(CLI::App& app, Cli& cli, Runner const& run) {
  auto st = std::make_shared<FunctionState>();
  // ---- deploy ----
  auto* deploy = app.add_subcommand("deploy", "Apply a deploy file: print the plan, then apply it");
  auto* file = deploy->add_option("-f,--file", st->deploy_file, "The deploy file");
  auto* workflow = deploy->add_option(
      "--github-workflow", st->github_workflow,
      "Deploy the google-github-actions/deploy-cloud-functions steps of this GitHub Actions workflow instead");
  file->excludes(workflow);
  deploy->add_option("--set", st->workflow_sets,
                     "With --github-workflow: the value of an expression, as needs.setup.outputs.env=dev; repeatable");
  deploy->add_option("--env-vars-file", st->env_vars_file,
                     "With --github-workflow: a YAML map of environment variables added to each function it deploys "
                     "(what GCP gives them there, such as a database address); they win over the step's env_vars");
  deploy->add_flag("--dry-run", st->dry_run, "Only print the plan");
  deploy->callback(run([&cli, st]() -> Status {
    if (st->deploy_file.empty() == st->github_workflow.empty()) {
      return InvalidArgumentError("give a deploy file (-f FILE) or a workflow (--github-workflow FILE)");
    }
    std::map<std::string, std::string> sets;
    for (auto const& set : st->workflow_sets) {
      auto eq = set.find('=');
      if (eq == std::string::npos || eq == 0) return InvalidArgumentError("--set " + set + ": expected EXPRESSION=VALUE");
      std::string expr = set.substr(0, eq);
      if (expr.rfind("${{", 0) == 0 && expr.size() >= 5 && expr.substr(expr.size() - 2) == "}}") {
        expr = expr.substr(3, expr.size() - 5);  // ${{ x }} given whole
      }
      expr.erase(0, expr.find_first_not_of(' '));
      expr.erase(expr.find_last_not_of(' ') + 1);
      sets[expr] = set.substr(eq + 1);
    }
    if (!sets.empty() && st->github_workflow.empty()) return InvalidArgumentError("--set needs --github-workflow");
    if (!st->env_vars_file.empty() && st->github_workflow.empty()) {
      return InvalidArgumentError("--env-vars-file needs --github-workflow (a deploy file sets env_vars_file itself)");
    }
    FERRY_ASSIGN_OR_RETURN(auto request, st->github_workflow.empty()
                                             ? ParseDeployFile(st->deploy_file, cli.project_flag())
                                             : ParseGithubWorkflow(st->github_workflow, cli.project_flag(), sets));
    if (!st->env_vars_file.empty()) {
      FERRY_ASSIGN_OR_RETURN(auto vars, ReadEnvVarsFile(st->env_vars_file));
      for (auto& fn : request.functions) {
        for (auto const& [key, value] : vars) fn.env_vars[key] = value;
      }
    }
    request.dry_run = st->dry_run;
    Json body = Json::parse(DeployRequestToJson(request).dump());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", "/ferry/v1/deploy", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
      return OkStatus();
    }
    int changes = 0;
    for (auto const& item : res.value("plan", Json::array())) {
      std::string action = item.value("action", "");
      if (action == "unchanged") continue;
      ++changes;
      std::cout << (action == "create" ? "+ " : action == "delete" ? "- " : "~ ") << action << " "
                << item.value("kind", "") << " " << item.value("name", "") << "\n";
    }
    // Once per function: the Cloud Functions settings it gives that Ferry keeps but does not act on.
    for (auto const& fn : request.functions) {
      if (fn.no_effect.empty()) continue;
      std::string keys;
      for (auto const& [key, value] : fn.no_effect) keys += (keys.empty() ? "" : ", ") + key;
      std::cout << "  function " << fn.name << ": no effect here: " << keys << "\n";
    }
    // The daemon's notes: runtime versions, and the output of a dependency install that ran (indented).
    for (auto const& note : res.value("notes", Json::array())) {
      if (!note.is_string()) continue;
      std::string text = note.get<std::string>();
      for (std::size_t at = 0, end; at < text.size(); at = end + 1) {
        end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        std::cout << (at == 0 ? "  " : "    ") << std::string_view(text).substr(at, end - at) << "\n";
      }
    }
    if (changes == 0) {
      std::cout << "No changes.\n";
    } else if (res.value("applied", false)) {
      std::cout << "Applied " << changes << " change(s).\n";
    } else {
      std::cout << changes << " change(s) planned; nothing applied (--dry-run).\n";
    }
    return OkStatus();
  }));

  // ---- functions ----
  auto* functions = app.add_subcommand("functions", "Manage functions");
  functions->require_subcommand(1);
  auto* flist = functions->add_subcommand("list", "List deployed functions");
  flist->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", "/ferry/v1/projects/" + project + "/functions"));
    Json list = res.value("functions", Json::array());
    if (cli.json_output()) {
      std::cout << list.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    bool cluster = false;
    for (auto const& f : list) {
      auto const& spec = f["spec"];
      std::string trigger = spec.value("event_trigger_type", "");
      if (trigger == "google.pubsub.topic.publish") trigger = "topic " + Short(spec.value("event_trigger_resource", ""));
      // In a cluster, each node's instances: "node=running ...".
      std::string per_node;
      for (auto const& part : f.value("nodes", Json::array())) {
        cluster = true;
        per_node += (per_node.empty() ? "" : " ") + part.value("node", "") + "=" +
                    std::to_string(part.value("instancesRunning", 0));
      }
      rows.push_back({Short(f.value("name", "")), f.value("state", ""), spec.value("runtime", ""), trigger,
                      std::to_string(f.value("instancesRunning", 0)) + "/" + std::to_string(spec.value("max_instances", 0)),
                      per_node});
    }
    std::vector<std::string> header = {"NAME", "STATE", "RUNTIME", "TRIGGER", "INSTANCES"};
    if (cluster) {
      header.push_back("BY NODE");
    } else {
      for (auto& row : rows) row.pop_back();
    }
    PrintTable(header, rows);
    return OkStatus();
  }));
  auto* fdescribe = functions->add_subcommand("describe", "Show a function");
  fdescribe->add_option("FUNCTION", st->one_id)->required();
  fdescribe->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("functions", st->one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path));
    PrintDescribe(cli, res);
    return OkStatus();
  }));
  auto* fdelete = functions->add_subcommand("delete", "Delete a function and its trigger subscription");
  fdelete->add_option("FUNCTION", st->one_id)->required();
  fdelete->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("functions", st->one_id));
    FERRY_RETURN_IF_ERROR(cli.Call("DELETE", path));
    std::cerr << "Deleted function [" << st->one_id << "].\n";
    return OkStatus();
  }));

  // ---- call ----
  auto* call = app.add_subcommand("call", "Invoke a function once, now (not through its trigger)");
  call->add_option("FUNCTION", st->one_id)->required();
  call->add_option("--data", st->call_data, "The event's data (background functions) or the request body (HTTP)");
  call->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("functions", st->one_id));
    Json body{{"data", st->call_data}};
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", path + ":call", &body));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
    } else {
      std::cout << "executionId: " << res.value("executionId", "") << "\nstatus: " << res.value("status", "") << "\n";
      if (res.contains("result")) std::cout << "result: " << res.value("result", "") << "\n";
      if (res.contains("error")) std::cout << "error: " << res.value("error", "") << "\n";
    }
    if (res.value("status", "") != "ok") return Status(StatusCode::kUnknown, "the execution failed");
    return OkStatus();
  }));

  // ---- logs ----
  auto* logs = app.add_subcommand("logs", "Show a function's logs, oldest first");
  logs->add_option("FUNCTION", st->one_id)->required();
  logs->add_option("--limit", st->log_limit, "The newest N lines")->capture_default_str()->check(CLI::Range(1, 10000));
  logs->add_flag("-f,--follow", st->follow, "Keep printing new lines as they come");
  logs->add_option("--execution-id", st->execution_id, "Only this execution's lines");
  logs->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("functions", st->one_id));
    int64_t after = 0;
    bool first = true;
    while (true) {
      // --limit picks the newest lines at first; after that, every new line is shown.
      std::string target = path + "/logs?limit=" + std::to_string(first ? st->log_limit : 10000) + "&after=" +
                           std::to_string(after);
      if (!st->execution_id.empty()) target += "&executionId=" + UrlEncode(st->execution_id);
      FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", target));
      std::vector<std::vector<std::string>> rows;
      for (auto const& e : res.value("entries", Json::array())) {
        after = std::max<int64_t>(after, e.value("seq", int64_t{0}));
        if (cli.json_output()) {
          std::cout << e.dump() << "\n";
          continue;
        }
        std::string severity = e.value("severity", "");
        std::string time = e.value("time", "");
        std::replace(time.begin(), time.end(), 'T', ' ');
        if (!time.empty() && time.back() == 'Z') time.pop_back();
        rows.push_back({severity.empty() ? "" : severity.substr(0, 1), Short(st->one_id), e.value("executionId", ""),
                        time, e.value("message", "")});
      }
      // As `gcloud functions logs read` prints them; followed lines come unaligned, as they arrive.
      if (first && !cli.json_output()) {
        PrintTable({"LEVEL", "NAME", "EXECUTION_ID", "TIME_UTC", "LOG"}, rows);
      } else {
        for (auto const& r : rows) std::cout << r[0] << "  " << r[1] << "  " << r[2] << "  " << r[3] << "  " << r[4] << "\n";
      }
      first = false;
      std::cout.flush();
      if (!st->follow) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return OkStatus();
  }));
}

}  // namespace ferry
