#pragma once

#include <string>

#include "api/http_server.h"
#include "broker/dead_letters.h"
#include "control/function_service.h"
#include "control/scheduler.h"
#include "store/execution_log.h"

namespace ferry {

// Ferry's admin API (JSON over HTTP under /ferry/v1/), which the CLI speaks. Errors are google.rpc.Status
// bodies, as on the Pub/Sub API.
//   POST   /ferry/v1/deploy                                    {project, topics, functions, dry_run}
//   GET    /ferry/v1/projects/{p}/functions
//   GET    /ferry/v1/projects/{p}/locations/{r}/functions/{f}  (also without /locations/{r}: region "local")
//   DELETE the same
//   POST   .../functions/{f}:call                              {data}
//   GET    .../functions/{f}/executions?limit=N&messageId=ID
//   GET    .../functions/{f}/logs?limit=N&after=SEQ&executionId=ID
//   GET    /ferry/v1/executions/{id}
//   GET    /ferry/v1/projects/{p}/subscriptions/{s}/deadLetters?limit=N&after=ID   what {s} dead-lettered
//   POST   .../deadLetters:redrive  {messageIds: [...]} or {all: true}             back to {s}
//   POST   .../deadLetters:purge    the same, dropped
//   GET    /ferry/v1/projects/{p}/subscriptions/{s}/messages?limit=N&after=ID      peek: no lease, no attempt
//   GET    /ferry/v1/projects/{p}/overview    topics, subscriptions and functions with their numbers (the console)
class AdminApi {
 public:
  AdminApi(FunctionService& functions, Scheduler& scheduler, ExecutionLog& log, Broker& broker,
           std::string default_project)
      : functions_(functions),
        scheduler_(scheduler),
        log_(log),
        broker_(broker),
        dead_letters_(broker),
        default_project_(std::move(default_project)) {}
  // Paths it does not know are answered 404 with a google.rpc body.
  HttpResponse Handle(HttpRequest const& request);

 private:
  HttpResponse Deploy(HttpRequest const& request);
  HttpResponse Function(HttpRequest const& request, std::string const& name, std::string const& rest);
  HttpResponse Schedule(HttpRequest const& request, std::string const& name, std::string const& verb);
  HttpResponse DeadLetterCall(HttpRequest const& request, std::string const& subscription, std::string const& verb);
  HttpResponse Peek(HttpRequest const& request, std::string const& subscription);
  HttpResponse Overview(std::string const& project);

  FunctionService& functions_;
  Scheduler& scheduler_;
  ExecutionLog& log_;
  Broker& broker_;
  DeadLetters dead_letters_;
  std::string default_project_;
};

}  // namespace ferry
