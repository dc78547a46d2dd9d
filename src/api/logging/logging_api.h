#pragma once

#include <string_view>

#include "api/http_server.h"
#include "control/function_service.h"
#include "store/execution_log.h"

namespace ferry {

// Cloud Logging v2's entries:list over REST, for functions' logs as `gcloud functions logs read` reads them:
//   POST /v2/entries:list  {resourceNames: ["projects/{p}"], filter, orderBy: "timestamp asc|desc", pageSize,
//                           pageToken}
// Each line of a function's executions is a LogEntry of resource type cloud_function (labels function_name,
// region, project_id) with labels.execution_id, severity, timestamp and textPayload. The filter is
// model/log_filter.h's subset of the Logging query language. Bounded: the newest 1,000 lines of each function of
// the project are searched, and a page holds at most 1,000 entries.
class LoggingApi {
 public:
  LoggingApi(FunctionService& functions, ExecutionLog& log) : functions_(functions), log_(log) {}
  static bool Serves(std::string_view path) { return path == "/v2/entries:list"; }
  HttpResponse Handle(HttpRequest const& request);

 private:
  FunctionService& functions_;
  ExecutionLog& log_;
};

}  // namespace ferry
