#include "deploy/deploy_file.h"

#include <algorithm>

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <cctype>
#include <charconv>
#include <string_view>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "common/utf8.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

// The deploy-cloud-functions action's list form: KEY=VALUE pairs separated by commas or newlines, whitespace
// around keys and values trimmed unless quoted ("..." or '...'), a backslash taking the next character as it is,
// "{}" for none, and lines starting with # skipped. (By hand: no library reads this form, and it is one loop.)
StatusOr<Attributes> ParseKeyValueList(std::string const& text) {
  // Each entry as characters, each marked literal (quoted or escaped: never a separator, never trimmed).
  struct Char {
    char c;
    bool literal;
  };
  std::vector<std::vector<Char>> entries(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      entries.back().push_back({text[++i], true});
    } else if (c == '"' || c == '\'') {
      std::size_t close = text.find(c, i + 1);
      if (close == std::string::npos) return InvalidArgumentError(std::string("a quote ") + c + " is not closed");
      for (std::size_t k = i + 1; k < close; ++k) entries.back().push_back({text[k], true});
      i = close;
    } else if (c == ',' || c == '\n') {
      entries.emplace_back();
    } else {
      entries.back().push_back({c, false});
    }
  }
  auto blank = [](Char const& ch) { return !ch.literal && (ch.c == ' ' || ch.c == '\t' || ch.c == '\r'); };
  auto trimmed = [&](auto begin, auto end) {
    while (begin != end && blank(*begin)) ++begin;
    while (end != begin && blank(*(end - 1))) --end;
    std::string out;
    for (auto it = begin; it != end; ++it) out += it->c;
    return out;
  };
  Attributes out;
  for (auto const& entry : entries) {
    std::string whole = trimmed(entry.begin(), entry.end());
    bool any_literal = std::any_of(entry.begin(), entry.end(), [](Char const& ch) { return ch.literal; });
    if (whole.empty() && !any_literal) continue;  // a trailing comma, a blank line
    if (!any_literal && (whole == "{}" || whole[0] == '#')) continue;  // none at all; a comment line
    auto eq = std::find_if(entry.begin(), entry.end(), [](Char const& ch) { return !ch.literal && ch.c == '='; });
    if (eq == entry.end()) return InvalidArgumentError("\"" + whole + "\" is not KEY=VALUE");
    std::string key = trimmed(entry.begin(), eq);
    if (key.empty()) return InvalidArgumentError("\"" + whole + "\" has no key");
    out[key] = trimmed(eq + 1, entry.end());
  }
  return out;
}

// Errors carry the file and the node's position (1-based, as editors count).
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  // The document, or an error: text that is not UTF-8 is refused before the parser (JSON, which carries it to the
  // daemon, could not hold it), naming its first bad line.
  StatusOr<YAML::Node> Load(std::string const& text) const {
    if (!IsValidUtf8(text)) {
      std::size_t line = 1, start = 0;
      for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1, ++line) {
        if (!IsValidUtf8(std::string_view(text).substr(start, end - start))) break;
      }
      return InvalidArgumentError(file_ + ":" + std::to_string(line) + ": not valid UTF-8");
    }
    try {
      return YAML::Load(text);
    } catch (YAML::Exception const& e) {  // a syntax error; a nesting too deep for the parser, among others
      return Error(e.mark, e.msg);
    }
  }

  Status Error(YAML::Mark const& mark, std::string const& message) const {
    if (mark.is_null()) return InvalidArgumentError(file_ + ": " + message);
    return InvalidArgumentError(file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) +
                                ": " + message);
  }

  StatusOr<std::string> String(YAML::Node const& node, std::string const& what) const {
    if (!node.IsScalar()) return Error(node.Mark(), what + " must be a string");
    return node.Scalar();
  }

  StatusOr<int64_t> Integer(YAML::Node const& node, std::string const& what) const {
    if (!node.IsScalar()) return Error(node.Mark(), what + " must be a whole number");
    std::string const& text = node.Scalar();
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc::result_out_of_range) return Error(node.Mark(), what + " is out of range");
    if (ec != std::errc() || end != text.data() + text.size()) {  // also "", "+3", "1.5"
      return Error(node.Mark(), what + " must be a whole number");
    }
    return n;
  }

  StatusOr<bool> Bool(YAML::Node const& node, std::string const& what) const {
    if (node.IsScalar()) {
      std::string const& v = node.Scalar();
      if (v == "true" || v == "True" || v == "yes") return true;
      if (v == "false" || v == "False" || v == "no") return false;
    }
    return Error(node.Mark(), what + " must be true or false");
  }

  // "2m", "90s", "1h30m" or a number of seconds. Returns milliseconds.
  StatusOr<int64_t> Duration(YAML::Node const& node, std::string const& what) const {
    if (!node.IsScalar()) return Error(node.Mark(), what + " must be a duration such as 90s or 2m");
    auto ms = ParseHumanDuration(node.Scalar());
    if (!ms.ok()) return Error(node.Mark(), what + ": " + ms.status().message());
    return *ms;
  }

  // A map, or as the deploy-cloud-functions action writes it: "K=V,K2=V2" (commas or newlines between pairs).
  StatusOr<Attributes> Pairs(YAML::Node const& node, std::string const& what) const {
    if (!node.IsScalar()) return Map(node, what);
    auto pairs = ParseKeyValueList(node.Scalar());
    if (!pairs.ok()) return Error(node.Mark(), what + ": " + pairs.status().message());
    return *std::move(pairs);
  }

  StatusOr<Attributes> Map(YAML::Node const& node, std::string const& what) const {
    if (!node.IsMap()) return Error(node.Mark(), what + " must be a map of names to strings or KEY=VALUE,...");
    Attributes out;
    for (auto const& kv : node) {
      if (!kv.second.IsScalar()) return Error(kv.second.Mark(), what + "." + kv.first.Scalar() + " must be a string");
      out[kv.first.Scalar()] = kv.second.Scalar();
    }
    return out;
  }

 private:
  std::string file_;
};

#define FERRY_YAML_ASSIGN(lhs, expr)   \
  do {                                 \
    auto _v = (expr);                  \
    if (!_v.ok()) return _v.status();  \
    lhs = *std::move(_v);              \
  } while (false)

StatusOr<ScheduleSpec> ReadSchedule(Reader const& r, YAML::Node const& node, std::string const& project) {
  if (!node.IsMap()) return r.Error(node.Mark(), "each schedule must be a map of settings");
  ScheduleSpec s;
  s.project = project;
  if (!node["name"]) return r.Error(node.Mark(), "a schedule needs a name");
  FERRY_YAML_ASSIGN(s.name, r.String(node["name"], "name"));
  std::string const prefix = "schedule " + s.name + ": ";
  for (auto const& kv : node) {
    std::string key = kv.first.Scalar();
    YAML::Node const& v = kv.second;
    std::string what = prefix + key;
    if (key == "name") continue;
    if (key == "schedule") FERRY_YAML_ASSIGN(s.schedule, r.String(v, what));
    else if (key == "time_zone") FERRY_YAML_ASSIGN(s.time_zone, r.String(v, what));
    else if (key == "description") FERRY_YAML_ASSIGN(s.description, r.String(v, what));
    else if (key == "region") FERRY_YAML_ASSIGN(s.region, r.String(v, what));
    else if (key == "topic") FERRY_YAML_ASSIGN(s.topic, r.String(v, what));
    else if (key == "data") FERRY_YAML_ASSIGN(s.data, r.String(v, what));
    else if (key == "attributes") FERRY_YAML_ASSIGN(s.attributes, r.Map(v, what));
    else if (key == "function") FERRY_YAML_ASSIGN(s.function, r.String(v, what));
    else if (key == "retry_count") {
      int64_t n = 0;
      FERRY_YAML_ASSIGN(n, r.Integer(v, what));
      s.retry_count = static_cast<int>(std::clamp<int64_t>(n, -1, 1000));
    } else if (key == "min_backoff") FERRY_YAML_ASSIGN(s.min_backoff_ms, r.Duration(v, what));
    else if (key == "catch_up") FERRY_YAML_ASSIGN(s.catch_up_ms, r.Duration(v, what));
    else return r.Error(kv.first.Mark(), "unknown schedule setting \"" + key + "\"");
  }
  if (!node["schedule"]) return r.Error(node.Mark(), prefix + "a schedule needs schedule: (a cron expression)");
  // Values are checked here, so an error points at the file.
  ScheduleSpec checked = s;
  if (Status st = NormalizeScheduleSpec(checked); !st.ok()) return r.Error(node.Mark(), st.message());
  return s;
}

// Reads a whole file, or INVALID_ARGUMENT naming it.
StatusOr<std::string> ReadText(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError(path + ": cannot read the file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return InvalidArgumentError(path + ": cannot read the file");
  return text;
}

// Inputs of google-github-actions/deploy-cloud-functions (v0 to v3) and gcloud that mean nothing on Ferry.
bool IsNoEffectSetting(std::string const& key) {
  static constexpr std::string_view kKeys[] = {
      "all_traffic_on_latest_revision", "build_service_account", "build_worker_pool", "cpu", "credentials",
      "deploy_timeout", "description", "docker_registry", "docker_repository", "environment",
      "event_trigger_channel", "event_trigger_location", "event_trigger_service", "event_trigger_service_account",
      "https_trigger_security_level", "ingress_settings", "kms_key_name", "secret_environment_variables",
      "secret_volumes", "secrets", "service_account", "service_account_email", "universe", "vpc_connector",
      "vpc_connector_egress_settings"};
  return std::find(std::begin(kKeys), std::end(kKeys), key) != std::end(kKeys);
}

StatusOr<FunctionSpec> ReadFunction(Reader const& r, YAML::Node const& node, std::string const& project,
                                    fs::path const& base) {
  if (!node.IsMap()) return r.Error(node.Mark(), "each function must be a map of settings");
  FunctionSpec s;
  s.project = project;
  if (!node["name"]) return r.Error(node.Mark(), "a function needs a name");
  FERRY_YAML_ASSIGN(s.name, r.String(node["name"], "name"));
  std::string const fn = "function " + s.name + ": ";
  bool trigger_http = false;
  for (auto const& kv : node) {
    std::string key = kv.first.Scalar();
    YAML::Node const& v = kv.second;
    std::string what = fn + key;
    if (key == "name") continue;
    if (key == "entry_point") FERRY_YAML_ASSIGN(s.entry_point, r.String(v, what));
    else if (key == "runtime") {
      // Ferry's names, or Cloud Functions' with a version (python39, nodejs20), which describe keeps.
      std::string runtime;
      FERRY_YAML_ASSIGN(runtime, r.String(v, what));
      s.runtime = FerryRuntime(runtime);
      if (s.runtime.empty()) {
        return r.Error(v.Mark(), what + " must be cpp, command, nodejs, python3 or a Cloud Functions runtime "
                                        "(python37 ... python313, nodejs10 ... nodejs22), not \"" + runtime + "\"");
      }
      if (runtime != s.runtime) s.google_runtime = runtime;
    } else if (key == "project_id") {
      // The action's: one project per deploy here, the file's.
      std::string id;
      FERRY_YAML_ASSIGN(id, r.String(v, what));
      if (id != project) return r.Error(v.Mark(), what + " \"" + id + "\" is not the deploy's project \"" + project + "\"");
    }
    else if (key == "region") FERRY_YAML_ASSIGN(s.region, r.String(v, what));
    else if (key == "source_dir") {
      std::string dir;
      FERRY_YAML_ASSIGN(dir, r.String(v, what));
      std::error_code ec;
      fs::path abs = fs::weakly_canonical(base / dir, ec);
      if (ec || !fs::is_directory(abs, ec)) return r.Error(v.Mark(), what + ": \"" + dir + "\" is not a directory");
      s.source_dir = abs.string();
    } else if (key == "command") {
      if (v.IsScalar()) {
        // A command line split on spaces; use a list for arguments that contain spaces.
        std::istringstream words(v.Scalar());
        for (std::string w; words >> w;) s.command.push_back(w);
      } else if (v.IsSequence()) {
        for (auto const& arg : v) {
          std::string a;
          FERRY_YAML_ASSIGN(a, r.String(arg, what));
          s.command.push_back(a);
        }
      } else {
        return r.Error(v.Mark(), what + " must be a command line or a list of arguments");
      }
    } else if (key == "env_vars" || key == "environment_variables") {
      Attributes vars;
      FERRY_YAML_ASSIGN(vars, r.Pairs(v, what));
      vars.merge(s.env_vars);  // an env_vars_file read before: the inline values win, as gcloud's flags do
      s.env_vars = std::move(vars);
    } else if (key == "env_vars_file") {
      // gcloud's --env-vars-file: a YAML map of names to strings.
      std::string file;
      FERRY_YAML_ASSIGN(file, r.String(v, what));
      Attributes read;
      FERRY_YAML_ASSIGN(read, ReadEnvVarsFile((base / file).string()));
      s.env_vars.merge(read);  // keeps values set inline
    } else if (key == "build_environment_variables") {
      FERRY_YAML_ASSIGN(s.build_environment_variables, r.Pairs(v, what));
    } else if (IsNoEffectSetting(key)) {
      // Cloud Functions settings with no meaning on Ferry: kept as given (describe shows them), never dropped.
      if (v.IsScalar()) {
        s.no_effect[key] = v.Scalar();
      } else {
        YAML::Emitter out;
        out << YAML::Flow << v;
        s.no_effect[key] = out.c_str();
      }
    }
    else if (key == "signature_type") FERRY_YAML_ASSIGN(s.signature, r.String(v, what));
    else if (key == "event_trigger_type") FERRY_YAML_ASSIGN(s.trigger_type, r.String(v, what));
    else if (key == "event_trigger_resource") FERRY_YAML_ASSIGN(s.trigger_resource, r.String(v, what));
    else if (key == "event_trigger_retry") FERRY_YAML_ASSIGN(s.retry, r.Bool(v, what));
    else if (key == "trigger_http") FERRY_YAML_ASSIGN(trigger_http, r.Bool(v, what));
    else if (key == "dead_letter_topic") FERRY_YAML_ASSIGN(s.dead_letter_topic, r.String(v, what));
    else if (key == "max_delivery_attempts") FERRY_YAML_ASSIGN(s.max_delivery_attempts, r.Integer(v, what));
    else if (key == "min_retry_delay") FERRY_YAML_ASSIGN(s.min_retry_delay_ms, r.Duration(v, what));
    else if (key == "max_retry_delay") FERRY_YAML_ASSIGN(s.max_retry_delay_ms, r.Duration(v, what));
    else if (key == "max_instances" || key == "max_instance_count") FERRY_YAML_ASSIGN(s.max_instances, r.Integer(v, what));
    else if (key == "min_instances" || key == "min_instance_count") FERRY_YAML_ASSIGN(s.min_instances, r.Integer(v, what));
    else if (key == "concurrency" || key == "max_instance_request_concurrency") {
      FERRY_YAML_ASSIGN(s.concurrency, r.Integer(v, what));
    } else if (key == "event_trigger_pubsub_topic") {
      FERRY_YAML_ASSIGN(s.trigger_resource, r.String(v, what));
      s.trigger_type = kPubsubTrigger;
    } else if (key == "labels") FERRY_YAML_ASSIGN(s.labels, r.Pairs(v, what));
    else if (key == "memory_mb") FERRY_YAML_ASSIGN(s.memory_mb, r.Integer(v, what));
    else if (key == "memory") {
      // gcloud's form: 512MB, 1GB, or a number of megabytes.
      std::string_view text = v.IsScalar() ? std::string_view(v.Scalar()) : std::string_view();
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      std::string_view unit = ec == std::errc() ? text.substr(static_cast<std::size_t>(end - text.data())) : "";
      while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.remove_prefix(1);
      bool giga = unit == "GB" || unit == "GiB" || unit == "G";
      if (ec != std::errc() || n < 0 || !(giga || unit.empty() || unit == "MB" || unit == "MiB" || unit == "M") ||
          n > (giga ? int64_t{1} << 30 : int64_t{1} << 40)) {
        return r.Error(v.Mark(), what + " must be a size such as 512MB");
      }
      s.memory_mb = giga ? n * 1024 : n;
    } else if (key == "timeout" || key == "service_timeout") {
      int64_t ms = 0;
      FERRY_YAML_ASSIGN(ms, r.Duration(v, what));
      if (ms % 1000 != 0) return r.Error(v.Mark(), what + " must be whole seconds");
      s.timeout_seconds = static_cast<int>(ms / 1000);
    } else if (key == "allow_unauthenticated") FERRY_YAML_ASSIGN(s.allow_unauthenticated, r.Bool(v, what));
    else if (key == "sentry_dsn") FERRY_YAML_ASSIGN(s.sentry_dsn, r.String(v, what));
    else return r.Error(kv.first.Mark(), fn + "unknown setting \"" + key + "\"");
  }
  if (trigger_http) {
    if (!s.trigger_type.empty() && s.trigger_type != kHttpTrigger) {
      return r.Error(node.Mark(), fn + "trigger_http and event_trigger_type " + s.trigger_type + " conflict");
    }
    s.trigger_type = kHttpTrigger;
  }
  if (s.runtime == "command" && s.source_dir.empty()) s.source_dir = fs::weakly_canonical(base).string();
  // The daemon checks the same; checking here puts the line and column on the message.
  if (auto st = NormalizeFunctionSpec(s); !st.ok()) return r.Error(node.Mark(), st.message());
  return s;
}

// A workflow's ${{ ... }} expressions, resolved as ParseGithubWorkflow says.
class Expressions {
 public:
  Expressions(Reader const& r, YAML::Node workflow_env, std::map<std::string, std::string> const& sets)
      : r_(r), workflow_env_(std::move(workflow_env)), sets_(sets) {}

  void SetJobEnv(YAML::Node env) { job_env_ = std::move(env); }

  // `text` with every expression replaced; `mark` places the errors. env values may hold expressions themselves.
  StatusOr<std::string> Resolve(std::string const& text, YAML::Mark const& mark, int depth = 0) const {
    if (depth > 8) return r_.Error(mark, "env values refer to each other in a loop");
    // env values that each name another several times would grow without end in a few levels: bounded.
    constexpr std::size_t kMaxValueBytes = 64 * 1024;
    std::string out;
    std::size_t pos = 0;
    while (true) {
      std::size_t open = text.find("${{", pos);
      if (open == std::string::npos) break;
      std::size_t close = text.find("}}", open + 3);
      if (close == std::string::npos) return r_.Error(mark, "an expression \"${{\" is not closed by \"}}\"");
      out += text.substr(pos, open - pos);
      std::string expr = text.substr(open + 3, close - open - 3);
      expr.erase(0, expr.find_first_not_of(" \t"));
      expr.erase(expr.find_last_not_of(" \t") + 1);
      std::optional<std::string> value;
      if (auto it = sets_.find(expr); it != sets_.end()) {
        value = it->second;
      } else if (expr.rfind("env.", 0) == 0) {
        std::string name = expr.substr(4);
        for (YAML::Node const* env : {&job_env_, &workflow_env_}) {
          if (!env->IsMap() || !(*env)[name]) continue;
          YAML::Node v = (*env)[name];
          if (!v.IsScalar()) return r_.Error(v.Mark(), "env." + name + " must be a string");
          auto resolved = Resolve(v.Scalar(), v.Mark(), depth + 1);
          if (!resolved.ok()) return resolved.status();
          value = *std::move(resolved);
          break;
        }
      }
      if (!value) {
        return r_.Error(mark, "unresolved expression ${{ " + expr + " }}: give its value with --set " + expr +
                                  "=VALUE");
      }
      out += *value;
      pos = close + 2;
      if (out.size() > kMaxValueBytes) return r_.Error(mark, "a value expands to more than 64 KiB");
    }
    return out + text.substr(pos);
  }

 private:
  Reader const& r_;
  YAML::Node workflow_env_;
  YAML::Node job_env_;
  std::map<std::string, std::string> const& sets_;
};

constexpr std::string_view kDeployAction = "google-github-actions/deploy-cloud-functions@";

}  // namespace

StatusOr<Attributes> ReadEnvVarsFile(std::string const& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  Reader reader(path);
  auto vars = reader.Load(*text);
  if (!vars.ok()) return vars.status();
  return reader.Map(*vars, "environment variables");
}

StatusOr<DeployRequest> ParseGithubWorkflow(std::string const& path, std::string const& default_project,
                                            std::map<std::string, std::string> const& sets) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  return ParseGithubWorkflowText(*text, path, default_project, sets);
}

StatusOr<DeployRequest> ParseGithubWorkflowText(std::string const& text, std::string const& path,
                                                std::string const& default_project,
                                                std::map<std::string, std::string> const& sets) {
  Reader r(path);
  YAML::Node root;
  FERRY_YAML_ASSIGN(root, r.Load(text));
  if (!root.IsMap() || !root["jobs"] || !root["jobs"].IsMap()) {
    return r.Error(root.Mark(), "a GitHub Actions workflow is a map with jobs");
  }
  // The repository's root, which the steps' source_dir is relative to (actions/checkout puts it there).
  fs::path base = fs::absolute(path).parent_path();
  if (base.filename() == "workflows" && base.parent_path().filename() == ".github") {
    base = base.parent_path().parent_path();
  }
  DeployRequest request;
  request.prune = false;
  try {
    // (A missing key's node is invalid in yaml-cpp; an empty Node is not.)
    auto optional = [](YAML::Node const& parent, char const* key) { return parent[key] ? parent[key] : YAML::Node(); };
    Expressions expressions(r, optional(root, "env"), sets);
    for (auto const& job : root["jobs"]) {
      if (!job.second.IsMap() || !job.second["steps"] || !job.second["steps"].IsSequence()) continue;
      expressions.SetJobEnv(optional(job.second, "env"));
      for (auto const& step : job.second["steps"]) {
        if (!step.IsMap() || !step["uses"] || !step["uses"].IsScalar()) continue;
        if (step["uses"].Scalar().rfind(kDeployAction, 0) != 0) continue;
        YAML::Node with = step["with"];
        if (!with || !with.IsMap()) return r.Error(step.Mark(), "a deploy-cloud-functions step needs with:");
        // Expressions resolved in place: each value keeps its line and column for the errors that follow.
        for (auto kv : with) {
          if (!kv.second.IsScalar()) continue;
          auto resolved = expressions.Resolve(kv.second.Scalar(), kv.second.Mark());
          if (!resolved.ok()) return resolved.status();
          kv.second = *resolved;
        }
        std::string project = default_project;
        if (with["project_id"]) FERRY_YAML_ASSIGN(project, r.String(with["project_id"], "project_id"));
        if (project.empty()) return r.Error(with.Mark(), "no project: give project_id or --project");
        if (request.project.empty()) request.project = project;
        if (project != request.project) {
          return r.Error(with["project_id"].Mark(), "the workflow deploys to two projects, " + request.project +
                                                        " and " + project + ": one at a time");
        }
        FunctionSpec spec;
        FERRY_YAML_ASSIGN(spec, ReadFunction(r, with, project, base));
        // The action deploys through the Cloud Functions API, as gcloud does: such a function declares no retry or
        // dead-letter policy, so a redeploy keeps what the workflow's next step sets on its subscription, and a
        // deploy file neither deletes nor takes it over (docs/gcloud.md, "Ownership").
        spec.created_by = kCreatedByFunctionsApi;
        for (auto const& other : request.functions) {
          if (other.name == spec.name) return r.Error(with.Mark(), "function " + spec.name + " is deployed twice");
        }
        if (spec.trigger_type == kPubsubTrigger &&
            std::find(request.topics.begin(), request.topics.end(), spec.trigger_resource) == request.topics.end()) {
          request.topics.push_back(spec.trigger_resource);
        }
        request.functions.push_back(std::move(spec));
      }
    }
  } catch (YAML::Exception const& e) {
    return r.Error(e.mark, e.msg);
  }
  if (request.functions.empty()) {
    return r.Error(root.Mark(), std::string("no step uses ") + std::string(kDeployAction) + "...");
  }
  return request;
}

StatusOr<DeployRequest> ParseDeployFile(std::string const& path, std::string const& default_project) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  return ParseDeployText(*text, path, default_project);
}

StatusOr<DeployRequest> ParseDeployText(std::string const& text, std::string const& path,
                                        std::string const& default_project) {
  Reader r(path);
  YAML::Node root;
  FERRY_YAML_ASSIGN(root, r.Load(text));
  if (!root.IsMap()) return r.Error(root.Mark(), "a deploy file is a map with project, topics and functions");
  fs::path base = fs::absolute(path).parent_path();
  DeployRequest request;
  request.project = default_project;
  try {
    if (root["project"]) FERRY_YAML_ASSIGN(request.project, r.String(root["project"], "project"));
    if (request.project.empty()) return r.Error(root.Mark(), "no project: add project: NAME or pass --project");
    for (auto const& kv : root) {
      std::string key = kv.first.Scalar();
      YAML::Node const& v = kv.second;
      if (key == "project") continue;
      if (key == "topics") {
        if (!v.IsSequence()) return r.Error(v.Mark(), "topics must be a list");
        for (auto const& t : v) {
          std::string name;
          if (t.IsMap()) {
            for (auto const& tk : t) {
              if (tk.first.Scalar() != "name") {
                return r.Error(tk.first.Mark(), "unknown topic setting \"" + tk.first.Scalar() + "\"");
              }
            }
            if (!t["name"]) return r.Error(t.Mark(), "a topic needs a name");
            FERRY_YAML_ASSIGN(name, r.String(t["name"], "topic name"));
          } else {
            FERRY_YAML_ASSIGN(name, r.String(t, "topic"));
          }
          std::string full = name.rfind("projects/", 0) == 0
                                 ? name
                                 : MakeResourceName(request.project, ResourceKind::kTopic, name);
          if (auto parsed = ParseResourceName(full, ResourceKind::kTopic); !parsed.ok()) {
            return r.Error(t.Mark(), "topic \"" + name + "\": " + parsed.status().message());
          }
          request.topics.push_back(full);
        }
      } else if (key == "functions") {
        if (!v.IsSequence()) return r.Error(v.Mark(), "functions must be a list");
        for (auto const& f : v) {
          FunctionSpec spec;
          FERRY_YAML_ASSIGN(spec, ReadFunction(r, f, request.project, base));
          for (auto const& other : request.functions) {
            if (other.name == spec.name) return r.Error(f.Mark(), "function " + spec.name + " is declared twice");
          }
          request.functions.push_back(std::move(spec));
        }
      } else if (key == "schedules") {
        if (!v.IsSequence()) return r.Error(v.Mark(), "schedules must be a list");
        for (auto const& node : v) {
          ScheduleSpec spec;
          FERRY_YAML_ASSIGN(spec, ReadSchedule(r, node, request.project));
          for (auto const& other : request.schedules) {
            if (other.name == spec.name) return r.Error(node.Mark(), "schedule " + spec.name + " is declared twice");
          }
          request.schedules.push_back(std::move(spec));
        }
      } else if (key == "buckets") {
        if (!v.IsSequence()) return r.Error(v.Mark(), "buckets must be a list");
        for (auto const& b : v) {
          if (!b.IsMap()) return r.Error(b.Mark(), "each bucket must be a map with name and path");
          BucketRecord bucket;
          for (auto const& bk : b) {
            std::string k = bk.first.Scalar();
            if (k == "name") FERRY_YAML_ASSIGN(bucket.name, r.String(bk.second, "bucket name"));
            else if (k == "path") FERRY_YAML_ASSIGN(bucket.path, r.String(bk.second, "bucket path"));
            else if (k == "versioning") FERRY_YAML_ASSIGN(bucket.versioning, r.Bool(bk.second, "bucket versioning"));
            else return r.Error(bk.first.Mark(), "unknown bucket setting \"" + k + "\" (name, path, versioning)");
          }
          if (bucket.name.empty() || bucket.path.empty()) return r.Error(b.Mark(), "a bucket needs a name and a path");
          if (!IsValidBucketName(bucket.name)) return r.Error(b.Mark(), "invalid bucket name \"" + bucket.name + "\"");
          bucket.path = fs::weakly_canonical(base / bucket.path).string();
          bucket.project = request.project;
          request.buckets.push_back(std::move(bucket));
        }
      } else {
        return r.Error(kv.first.Mark(), "unknown key \"" + key + "\" (expected project, topics, functions, schedules, buckets)");
      }
    }
  } catch (YAML::Exception const& e) {
    return r.Error(e.mark, e.msg);
  }
  return request;
}

}  // namespace ferry
