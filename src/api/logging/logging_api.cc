#include "api/logging/logging_api.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "model/json_codec.h"
#include "model/log_filter.h"

namespace ferry {
namespace {

using nlohmann::json;

constexpr int kLinesPerFunction = 1000;
constexpr int kMaxPageSize = 1000;
constexpr int kDefaultPageSize = 50;

struct Entry {
  LogEntry line;
  FunctionSpec const* spec;
};

}  // namespace

HttpResponse LoggingApi::Handle(HttpRequest const& req) {
  if (req.method != "POST") return MethodNotAllowed(req, "POST");
  auto body = ParseJsonText(req.body.empty() ? "{}" : req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  if (!body->is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
  std::vector<std::string> projects;
  for (char const* key : {"resourceNames", "projectIds"}) {
    if (!body->contains(key)) continue;
    if (!(*body)[key].is_array()) return ErrorResponse(InvalidArgumentError(std::string(key) + " must be a list"));
    for (auto const& r : (*body)[key]) {
      if (!r.is_string()) return ErrorResponse(InvalidArgumentError(std::string(key) + " must hold strings"));
      std::string name = r.get<std::string>();
      if (name.rfind("projects/", 0) == 0) name = name.substr(9);
      if (!IsValidProjectId(name)) {
        return ErrorResponse(InvalidArgumentError("Ferry serves the logs of projects: \"" + r.get<std::string>() +
                                                  "\" is not projects/PROJECT_ID"));
      }
      projects.push_back(name);
    }
  }
  if (projects.empty()) return ErrorResponse(InvalidArgumentError("resourceNames is required: [\"projects/ID\"]"));
  std::string filter_text, order = "timestamp asc", token;
  int page_size = kDefaultPageSize;
  for (auto const& [key, value] : body->items()) {
    if (key == "filter" || key == "orderBy" || key == "pageToken") {
      if (!value.is_string()) return ErrorResponse(InvalidArgumentError(key + " must be a string"));
      (key == "filter" ? filter_text : key == "orderBy" ? order : token) = value.get<std::string>();
    } else if (key == "pageSize") {
      if (!value.is_number_integer()) return ErrorResponse(InvalidArgumentError("pageSize must be an integer"));
      page_size = static_cast<int>(std::clamp<int64_t>(value.get<int64_t>(), 1, kMaxPageSize));
    } else if (key != "resourceNames" && key != "projectIds") {
      return ErrorResponse(InvalidArgumentError("Invalid JSON payload received. Unknown name \"" + key + "\""));
    }
  }
  if (order != "timestamp asc" && order != "timestamp desc" && order != "timestamp") {
    return ErrorResponse(InvalidArgumentError("orderBy must be \"timestamp asc\" or \"timestamp desc\""));
  }
  bool const descending = order == "timestamp desc";
  std::size_t offset = 0;
  if (!token.empty()) {
    try {
      offset = std::stoul(token);
    } catch (...) {
      return ErrorResponse(InvalidArgumentError("Invalid page token"));
    }
  }
  auto filter = LogFilter::Parse(filter_text);
  if (!filter.ok()) return ErrorResponse(filter.status());

  std::vector<FunctionSpec> specs;
  for (auto const& project : projects) {
    auto list = functions_.List(project);
    if (!list.ok()) return ErrorResponse(list.status());
    for (auto& f : *list) specs.push_back(std::move(f.spec));
  }
  std::vector<Entry> matched;
  for (auto const& spec : specs) {
    auto lines = log_.Logs({.function = FunctionResourceName(spec), .limit = kLinesPerFunction});
    if (!lines.ok()) return ErrorResponse(lines.status());
    for (auto& line : *lines) {
      std::string timestamp = FormatRfc3339(line.time_ms);
      auto fields = [&](std::string const& path) -> std::optional<std::string> {
        if (path == "resource.type") return std::string("cloud_function");
        if (path == "resource.labels.function_name") return spec.name;
        if (path == "resource.labels.region") return spec.region;
        if (path == "resource.labels.project_id") return spec.project;
        if (path == "logName") return "projects/" + spec.project + "/logs/cloudfunctions.googleapis.com%2Fcloud-functions";
        if (path == "labels.execution_id" && !line.execution_id.empty()) return line.execution_id;
        if (path == "severity") return line.severity.empty() ? std::string("DEFAULT") : line.severity;
        if (path == "timestamp" || path == "receiveTimestamp") return timestamp;
        if (path == "textPayload") return line.message;
        if (path == "insertId") return std::to_string(line.seq);
        return std::nullopt;
      };
      if (filter->Matches(fields)) matched.push_back({std::move(line), &spec});
    }
  }
  std::sort(matched.begin(), matched.end(), [&](Entry const& a, Entry const& b) {
    auto ka = std::pair(a.line.time_ms, a.line.seq), kb = std::pair(b.line.time_ms, b.line.seq);
    return descending ? ka > kb : ka < kb;
  });
  json entries = json::array();
  for (std::size_t i = offset; i < matched.size() && entries.size() < static_cast<std::size_t>(page_size); ++i) {
    auto const& [line, spec] = matched[i];
    std::string time = FormatRfc3339(line.time_ms);
    json e{{"logName", "projects/" + spec->project + "/logs/cloudfunctions.googleapis.com%2Fcloud-functions"},
           {"resource",
            {{"type", "cloud_function"},
             {"labels", {{"function_name", spec->name}, {"region", spec->region}, {"project_id", spec->project}}}}},
           {"textPayload", line.message},
           {"severity", line.severity.empty() ? "DEFAULT" : line.severity},
           {"timestamp", time},
           {"receiveTimestamp", time},
           {"insertId", std::to_string(line.seq)}};
    if (!line.execution_id.empty()) e["labels"] = {{"execution_id", line.execution_id}};
    entries.push_back(std::move(e));
  }
  json out = json::object();
  if (!entries.empty()) out["entries"] = std::move(entries);
  if (offset + static_cast<std::size_t>(page_size) < matched.size()) {
    out["nextPageToken"] = std::to_string(offset + static_cast<std::size_t>(page_size));
  }
  return {200, "application/json", SafeDump(out), {}};
}

}  // namespace ferry
