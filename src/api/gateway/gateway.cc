#include "api/gateway/gateway.h"

#include "common/latency_stages.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "common/percent_encode.h"

namespace ferry {
namespace {

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    auto pos = s.find('/');
    if (pos != 0) out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

bool IsHopByHop(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "transfer-encoding" || name == "content-length" ||
         name == "upgrade" || name == "host" || name == "te" || name == "trailer";
}

HttpResponse Plain(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body) + "\n", std::move(headers)};
}

}  // namespace

bool FunctionGateway::Serves(std::string_view path) {
  if (path.rfind("/functions/", 0) == 0 || path.rfind("/webhooks/", 0) == 0) return true;
  auto parts = Split(path);
  return parts.size() >= 6 && parts[0] == "projects" && parts[2] == "locations" && parts[4] == "functions";
}

HttpResponse FunctionGateway::Handle(HttpRequest const& request) {
  if (auto call = RouteCall(request)) {
    if (call->answer) return *std::move(call->answer);
    return ToResponse(functions_.InvokeHttp(call->function, std::move(call->invocation)));
  }
  auto parts = Split(request.path);
  if (parts.size() >= 2 && parts[0] == "webhooks") {
    std::string topic = request.path.substr(std::string_view("/webhooks/").size());
    if (topic.rfind("projects/", 0) != 0) topic = MakeResourceName(options_.default_project, ResourceKind::kTopic, topic);
    return Webhook(request, topic);
  }
  return ErrorResponse(NotFoundError("No such path: " + request.path));
}

bool FunctionGateway::TryHandle(HttpRequest const& request, boost::asio::io_context& io, HttpReply reply) {
  auto call = RouteCall(request);
  if (!call) return false;  // a webhook publishes, which waits for the store
  if (call->answer) {
    reply(*std::move(call->answer));
    return true;
  }
  return functions_.TryInvokeHttpAsync(call->function, std::move(call->invocation), io,
                                       [reply = std::move(reply), start = latency::Now()](CallResult result) {
                                         HttpResponse response = ToResponse(std::move(result));
                                         latency::RecordSince(Stage::kHttpCall, start);
                                         reply(std::move(response));
                                       });
}

std::optional<FunctionGateway::Call> FunctionGateway::RouteCall(HttpRequest const& request) {
  auto parts = Split(request.path);
  auto rest_after = [&](std::size_t n) {
    std::string rest;
    for (std::size_t i = n; i < parts.size(); ++i) rest += "/" + std::string(parts[i]);
    if (!request.path.empty() && request.path.back() == '/' && parts.size() > n) rest += "/";
    return rest.empty() ? std::string("/") : rest;
  };
  std::string project, region, id, rest;
  if (parts.size() >= 2 && parts[0] == "functions") {
    project = options_.default_project;
    id = parts[1];
    rest = rest_after(2);
  } else if (parts.size() >= 6 && parts[0] == "projects" && parts[2] == "locations" && parts[4] == "functions") {
    project = parts[1];
    region = parts[3];
    id = parts[5];
    rest = rest_after(6);
  } else {
    return std::nullopt;
  }

  Call call;
  auto target = functions_.FindRunning(project, region, id);
  if (!target.ok() || !target->http) {
    call.answer = Plain(404, "Function " + id + " is not an HTTP function of project " + project);
    return call;
  }
  if (!target->allow_unauthenticated && options_.tokens != nullptr) {
    Status st = options_.tokens->Check(request.Header("authorization"), Role::kInvoker);
    if (st.code() == StatusCode::kUnauthenticated) {
      call.answer = Plain(401, "Unauthorized: function " + id + " is private; send Authorization: Bearer TOKEN",
                          {{"WWW-Authenticate", "Bearer"}});
      return call;
    }
    if (!st.ok()) {
      call.answer = Plain(403, "Forbidden: the token may not invoke function " + id);
      return call;
    }
  }

  call.function = std::move(target->name);
  Invocation& invocation = call.invocation;
  invocation.method = request.method;
  invocation.path = PercentEncode(rest);
  // The path keeps its slashes.
  for (std::size_t pos = 0; (pos = invocation.path.find("%2F", pos)) != std::string::npos;) {
    invocation.path.replace(pos, 3, "/");
  }
  std::string query;
  for (auto const& [k, v] : request.query) query += (query.empty() ? "?" : "&") + PercentEncode(k) + "=" + PercentEncode(v);
  invocation.path += query;
  for (auto const& [k, v] : request.headers) {
    if (!IsHopByHop(k)) invocation.headers.emplace_back(k, v);
  }
  invocation.body = request.body;
  invocation.bounded_wait = true;
  invocation.client_gone = request.client_gone;
  invocation.queued = request.queued;
  return call;
}

HttpResponse FunctionGateway::ToResponse(StatusOr<CallResult> result) {
  if (!result.ok()) return Plain(503, result.status().message());
  std::vector<std::pair<std::string, std::string>> headers{{"Function-Execution-Id", result->execution_id}};
  if (result->status == "timeout") return Plain(504, "Gateway Timeout: " + result->error, headers);
  if (result->http_status == 0) return Plain(500, "Internal Server Error: " + result->error, headers);
  HttpResponse res{result->http_status, "", std::move(result->body), std::move(headers)};
  for (auto& [k, v] : result->headers) {
    std::string lower = k;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (IsHopByHop(lower)) continue;
    if (lower == "content-type") {
      res.content_type = v;
    } else {
      res.headers.emplace_back(k, v);
    }
  }
  return res;
}

std::string FunctionGateway::Signature(std::string const& secret, std::string const& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<unsigned char const*>(body.data()),
       body.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

HttpResponse FunctionGateway::Webhook(HttpRequest const& request, std::string const& topic) {
  if (request.method != "POST") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use POST"), 405);
  auto parsed = ParseResourceName(topic, ResourceKind::kTopic);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  if (parsed->id.rfind("ferry-", 0) == 0) {
    return ErrorResponse(Status(StatusCode::kPermissionDenied, "Topics named ferry-* are Ferry's own; webhooks "
                                                               "cannot publish to them"));
  }
  if (auto secret = options_.webhook_secrets.find(topic); secret != options_.webhook_secrets.end()) {
    std::string given = request.Header("x-ferry-signature-256");
    if (given.empty()) given = request.Header("x-hub-signature-256");
    std::string want = Signature(secret->second, request.body);
    // Constant time, so the comparison does not tell how much of a guess was right.
    if (given.size() != want.size() || CRYPTO_memcmp(given.data(), want.data(), want.size()) != 0) {
      return ErrorResponse(Status(StatusCode::kUnauthenticated, "The webhook signature is missing or wrong"), 401);
    }
  } else if (options_.tokens != nullptr) {
    if (Status st = options_.tokens->Check(request.Header("authorization"), Role::kPublisher); !st.ok()) {
      return ErrorResponse(st);
    }
  }
  PubsubMessage message;
  message.data = request.body;
  std::string type = request.Header("content-type");
  if (!type.empty()) message.attributes["content-type"] = type;
  if (message.data.empty() && message.attributes.empty()) message.attributes["content-type"] = "";
  auto ids = broker_.Publish(topic, {std::move(message)});
  if (!ids.ok()) return ErrorResponse(ids.status());
  return HttpResponse{202, "application/json", nlohmann::json{{"messageId", ids->front()}}.dump(), {}};
}

}  // namespace ferry
