#include "cli/cli.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/status_macros.h"

namespace ferry {
namespace {

// "a.b: v" lines for a JSON object, for describe.
void Flatten(Json const& j, std::string const& prefix, std::vector<std::vector<std::string>>& rows) {
  if (j.is_object() && !j.empty()) {
    for (auto const& [k, v] : j.items()) Flatten(v, prefix.empty() ? k : prefix + "." + k, rows);
  } else if (j.is_string()) {
    rows.push_back({prefix, j.get<std::string>()});
  } else {
    rows.push_back({prefix, j.is_object() ? "{}" : j.dump()});
  }
}

}  // namespace

std::string EnvOr(char const* name, std::string fallback) {
  char const* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

std::string UrlEncode(std::string const& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

void PrintTable(std::vector<std::string> const& headers, std::vector<std::vector<std::string>> const& rows) {
  std::vector<std::size_t> width(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (auto const& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto print_row = [&](std::vector<std::string> const& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print_row(headers);
  for (auto const& row : rows) print_row(row);
}

std::string Short(std::string const& name) {
  auto slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

int Fail(Status const& st) {
  std::fprintf(stderr, "ferry: error: %s\n", st.message().c_str());
  return 1;
}

void PrintDescribe(Cli& cli, Json const& j) {
  if (cli.json_output()) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  Flatten(j, "", rows);
  PrintTable({"FIELD", "VALUE"}, rows);
}

Status Cli::Connect() {
  std::string token = EnvOr("FERRY_TOKEN", "");
  if (!g_.token_file.empty()) {
    std::ifstream in(g_.token_file, std::ios::binary);
    if (!in) return InvalidArgumentError("cannot read --token-file " + g_.token_file);
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  }
  FERRY_ASSIGN_OR_RETURN(client_, HttpClient::Make(g_.endpoint, token));
  return OkStatus();
}

StatusOr<Json> Cli::Call(std::string const& method, std::string const& target, Json const* body) {
  if (!client_) FERRY_RETURN_IF_ERROR(Connect());
  FERRY_ASSIGN_OR_RETURN(auto res, client_->Send(method, target, body ? body->dump() : ""));
  Json json;
  try {
    json = res.body.empty() ? Json::object() : Json::parse(res.body);
  } catch (std::exception const&) {
    if (res.status >= 200 && res.status < 300) return InternalError("unreadable answer from ferry: " + res.body);
    return Status(StatusCode::kUnknown, "HTTP " + std::to_string(res.status) + ": " + res.body);
  }
  if (res.status >= 200 && res.status < 300) return json;
  auto const& err = json.contains("error") ? json["error"] : json;
  std::string message = err.value("message", "HTTP " + std::to_string(res.status));
  std::string status = err.value("status", "UNKNOWN");
  return Status(StatusCode::kUnknown, message + " (" + status + ")");
}

StatusOr<HttpResult> Cli::Raw(std::string const& method, std::string const& target, std::string const& body,
                              std::string const& content_type, HttpHeaders const& headers) {
  if (!client_) FERRY_RETURN_IF_ERROR(Connect());
  return client_->Send(method, target, body, content_type, headers);
}

StatusOr<std::string> Cli::Project() {
  if (!g_.project.empty()) return g_.project;
  FERRY_ASSIGN_OR_RETURN(auto info, Call("GET", "/ferry/v1/info"));
  g_.project = info.value("project", "");
  if (g_.project.empty()) return InvalidArgumentError("no project: pass --project");
  return g_.project;
}

StatusOr<std::string> Cli::Name(std::string const& id, char const* collection) {
  if (id.rfind("projects/", 0) == 0) return id;
  FERRY_ASSIGN_OR_RETURN(auto project, Project());
  return "projects/" + project + "/" + collection + "/" + id;
}

StatusOr<std::string> Cli::AdminPath(std::string const& collection, std::string const& id) {
  if (id.rfind("projects/", 0) == 0) return "/ferry/v1/" + id;
  FERRY_ASSIGN_OR_RETURN(auto project, Project());
  // A function's id is unique in its project: the daemon finds it in whichever region it was deployed to.
  if (collection == "functions") return "/ferry/v1/projects/" + project + "/functions/" + id;
  return "/ferry/v1/projects/" + project + "/locations/local/" + collection + "/" + id;
}

}  // namespace ferry
