// `ferry schedules` and `dead-letter`: running schedules by hand, and what subscriptions gave up on.
#include <algorithm>
#include <iostream>
#include <tuple>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "common/status_macros.h"

namespace ferry {
namespace {

struct OperationsState {
  std::string one_id;
  std::vector<std::string> dead_ids;
  bool dead_all = false;
  int dead_limit = 100;
};

// The admin API path of a subscription's dead letters, by id or full name.
StatusOr<std::string> DeadLetterPath(Cli& cli, std::string const& sub) {
  if (sub.rfind("projects/", 0) == 0) return "/ferry/v1/" + sub + "/deadLetters";
  FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
  return "/ferry/v1/projects/" + project + "/subscriptions/" + sub + "/deadLetters";
}

}  // namespace

void AddScheduleCommands(CLI::App& app, Cli& cli, Runner const& run) {
  auto st = std::make_shared<OperationsState>();
  // ---- schedules ----
  auto* schedules = app.add_subcommand("schedules", "Manage schedules (Cloud Scheduler jobs)");
  schedules->require_subcommand(1);
  auto* jlist = schedules->add_subcommand("list", "List schedules");
  jlist->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto project, cli.Project());
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", "/ferry/v1/projects/" + project + "/schedules"));
    Json list = res.value("schedules", Json::array());
    if (cli.json_output()) {
      std::cout << list.dump(2) << "\n";
      return OkStatus();
    }
    std::vector<std::vector<std::string>> rows;
    for (auto const& s : list) {
      std::string target = s.value("topic", "").empty() ? "function " + s.value("function", "")
                                                         : "topic " + Short(s.value("topic", ""));
      rows.push_back({s.value("id", ""), s.value("schedule", ""), s.value("time_zone", ""), target,
                      s.value("state", ""), s.value("next_fire_time", ""), s.value("last_fired_time", "")});
    }
    PrintTable({"ID", "SCHEDULE", "TIME_ZONE", "TARGET", "STATE", "NEXT_FIRE", "LAST_FIRED"}, rows);
    return OkStatus();
  }));
  auto* jdescribe = schedules->add_subcommand("describe", "Show a schedule");
  jdescribe->add_option("SCHEDULE", st->one_id)->required();
  jdescribe->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("jobs", st->one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path));
    PrintDescribe(cli, res);
    return OkStatus();
  }));
  for (auto [verb, help, done] : {std::tuple{"run", "Fire a schedule now, outside its ticks", "Ran"},
                                  std::tuple{"pause", "Pause a schedule: its ticks do not fire", "Paused"},
                                  std::tuple{"resume", "Resume a schedule from its next tick", "Resumed"}}) {
    auto* sub = schedules->add_subcommand(verb, help);
    sub->add_option("SCHEDULE", st->one_id)->required();
    sub->callback(run([&cli, st, verb = std::string(verb), done = std::string(done)]() -> Status {
      FERRY_ASSIGN_OR_RETURN(auto path, cli.AdminPath("jobs", st->one_id));
      Json empty = Json::object();
      FERRY_ASSIGN_OR_RETURN(auto answer, cli.Call("POST", path + ":" + verb, &empty));
      (void)answer;
      std::cerr << done << " schedule [" << st->one_id << "].\n";
      return OkStatus();
    }));
  }
}

void AddDeadLetterCommands(CLI::App& app, Cli& cli, Runner const& run) {
  auto st = std::make_shared<OperationsState>();
  // ---- dead-letter ----
  auto* dead = app.add_subcommand("dead-letter", "Messages a subscription dead-lettered: list, redrive, purge");
  dead->require_subcommand(1);
  auto* dlist = dead->add_subcommand("list", "List the messages a subscription dead-lettered, oldest first");
  dlist->add_option("SUBSCRIPTION", st->one_id, "The subscription that gave up on them (a function's trigger's)")
      ->required();
  dlist->add_option("--limit", st->dead_limit, "At most this many")->check(CLI::Range(1, 1000))->capture_default_str();
  dlist->callback(run([&cli, st]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto path, DeadLetterPath(cli, st->one_id));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("GET", path + "?limit=" + std::to_string(st->dead_limit)));
    if (cli.json_output()) {
      std::cout << res.dump(2) << "\n";
      return OkStatus();
    }
    auto cut = [](std::string text, std::size_t n) {
      std::replace(text.begin(), text.end(), '\n', ' ');
      return text.size() <= n ? text : text.substr(0, n) + "...";
    };
    std::vector<std::vector<std::string>> rows;
    for (auto const& m : res.value("messages", Json::array())) {
      rows.push_back({m.value("messageId", ""), m.value("publishTime", ""),
                      std::to_string(m.value("deliveryAttempts", 0)), std::to_string(m.value("redrives", 0)),
                      cut(m.value("lastError", ""), 60), cut(m.value("dataPreview", ""), 40)});
    }
    PrintTable({"MESSAGE_ID", "DEAD_LETTERED", "ATTEMPTS", "REDRIVES", "LAST_ERROR", "DATA"}, rows);
    if (res.contains("nextAfter")) std::cerr << "More follow; list them with --format json and the API's after.\n";
    return OkStatus();
  }));
  for (auto [verb, help, done] :
       {std::tuple{"redrive", "Send dead-lettered messages back to the subscription that gave up on them", "redriven"},
        std::tuple{"purge", "Drop dead-lettered messages for good", "purged"}}) {
    auto* sub = dead->add_subcommand(verb, help);
    sub->add_option("SUBSCRIPTION", st->one_id, "The subscription that dead-lettered them")->required();
    sub->add_option("--message-id", st->dead_ids, "A message's id on the dead-letter subscription (as list shows)");
    sub->add_flag("--all", st->dead_all, "Every message the subscription dead-lettered");
    sub->callback(run([&cli, st, verb = std::string(verb), done = std::string(done)]() -> Status {
      if (st->dead_all == !st->dead_ids.empty()) return InvalidArgumentError("give --message-id ID (one or more) or --all");
      FERRY_ASSIGN_OR_RETURN(auto path, DeadLetterPath(cli, st->one_id));
      Json body = st->dead_all ? Json{{"all", true}} : Json{{"messageIds", st->dead_ids}};
      FERRY_ASSIGN_OR_RETURN(auto res, cli.Call("POST", path + ":" + verb, &body));
      auto moved = res.value(done, Json::array());
      if (cli.json_output()) {
        std::cout << res.dump(2) << "\n";
      } else {
        std::cout << moved.size() << " message(s) " << done << ".\n";
      }
      if (!st->dead_all && moved.size() < st->dead_ids.size()) {
        return NotFoundError(std::to_string(st->dead_ids.size() - moved.size()) +
                             " of the messages named are not dead letters of " + st->one_id);
      }
      return OkStatus();
    }));
  }
}

}  // namespace ferry
