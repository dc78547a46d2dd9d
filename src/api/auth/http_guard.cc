#include "api/auth/http_guard.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace ferry {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// "host:port", "[v6]:port" or "host" -> host, lowercased.
std::string HostPart(std::string_view authority) {
  if (StartsWith(authority, "[")) {
    auto close = authority.find(']');
    return close == std::string_view::npos ? std::string() : Lower(authority.substr(1, close - 1));
  }
  return Lower(authority.substr(0, authority.find(':')));
}

bool IsIpLiteral(std::string const& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool IsMutating(std::string_view method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

HttpResponse Refuse(StatusCode code, std::string message) {
  auto res = ErrorResponse(Status(code, std::move(message)));
  if (code == StatusCode::kUnauthenticated) res.headers.emplace_back("WWW-Authenticate", "Bearer");
  return res;
}

}  // namespace

Access AccessFor(HttpRequest const& request) {
  std::string_view path = request.path;
  std::string_view method = request.method;
  bool reads = method == "GET" || method == "HEAD";
  if (path == "/healthz" || (path == "/" && reads)) return {Access::Kind::kPublic};
  // The console's page and script hold no data; everything it shows it reads through the APIs with the user's token.
  if ((path == "/console" || StartsWith(path, "/console/")) && reads) return {Access::Kind::kPublic};
  if (path == "/ferry/v1/info") return {Access::Kind::kAnyToken};
  if (path == "/metrics") return {Access::Kind::kRole, Role::kViewer};
  if (path == "/v2/entries:list") return {Access::Kind::kRole, Role::kViewer, IsMutating(method)};  // a read, by POST
  // Cloud Functions v1's :call runs a function, as the admin API's :call does.
  if (StartsWith(path, "/v1/projects/") && path.find("/functions/") != std::string_view::npos && EndsWith(path, ":call")) {
    return {Access::Kind::kRole, Role::kInvoker, IsMutating(method)};
  }
  if (StartsWith(path, "/functions/") || StartsWith(path, "/webhooks/")) return {Access::Kind::kDelegated};
  if (StartsWith(path, "/ferry/")) {
    if (reads) return {Access::Kind::kRole, Role::kViewer};
    bool call = EndsWith(path, ":call");
    return {Access::Kind::kRole, call ? Role::kInvoker : Role::kAdmin, IsMutating(method)};
  }
  // A function's source zip (gcloud functions deploy): the upload URL's random id is the permission, as a signed
  // URL's signature is at Google; only an admin gets one (functions:generateUploadUrl).
  if (StartsWith(path, "/upload/functions/")) return {Access::Kind::kDelegated};
  if (StartsWith(path, "/upload/storage/")) return {Access::Kind::kRole, Role::kPublisher};
  if (StartsWith(path, "/storage/") || StartsWith(path, "/download/storage/")) {
    return {Access::Kind::kRole, reads ? Role::kSubscriber : Role::kPublisher, IsMutating(method)};
  }
  if (StartsWith(path, "/projects/")) {
    // projects/{p}/locations/{r}/functions/{f}: an HTTP function by its full name.
    return {Access::Kind::kDelegated};
  }
  // Pub/Sub REST (and anything unknown, which then gets its 404 only with a token).
  if (reads) return {Access::Kind::kRole, Role::kViewer};
  Role role = Role::kAdmin;
  if (EndsWith(path, ":publish")) {
    role = Role::kPublisher;
  } else if (EndsWith(path, ":pull") || EndsWith(path, ":acknowledge") || EndsWith(path, ":modifyAckDeadline") ||
             EndsWith(path, ":seek")) {
    role = Role::kSubscriber;
  }
  return {Access::Kind::kRole, role, IsMutating(method)};
}

bool HttpGuard::HostAllowed(std::string_view authority) const {
  std::string host = HostPart(authority);
  if (host.empty()) return false;
  // DNS rebinding needs a name the attacker controls; an address literal is never one.
  if (host == "localhost" || EndsWith(host, ".localhost") || IsIpLiteral(host)) return true;
  if (host == Lower(options_.bound_host)) return true;
  return std::any_of(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                     [&](std::string const& allowed) { return Lower(allowed) == host; });
}

std::optional<HttpResponse> HttpGuard::BrowserRefusal(HttpRequest const& request) const {
  std::string host = request.Header("host");
  bool open = options_.tokens == nullptr || !options_.tokens->enabled();
  // Without tokens, whoever reaches the port may do anything, so the port must not be reachable through a name
  // that a web page controls (DNS rebinding). With tokens, a page cannot learn one, and any name may be used. A
  // request without Host (HTTP/1.0 tools) is no browser's.
  if (open && !host.empty() && !HostAllowed(host)) {
    return Refuse(StatusCode::kPermissionDenied,
                  "Host \"" + std::string(HostPart(host)) +
                      "\" is not this server's address; add it with ferry serve --allow-host if it is");
  }
  std::string origin = request.Header("origin");
  if (!origin.empty()) {
    // Same origin (the page was served by Ferry at this Host), or a name the operator allowed.
    std::string_view authority = origin;
    auto scheme = authority.find("://");
    authority = scheme == std::string_view::npos ? std::string_view() : authority.substr(scheme + 3);
    bool same = !authority.empty() && Lower(authority) == Lower(host);
    bool allowed = !authority.empty() && std::any_of(options_.allowed_hosts.begin(), options_.allowed_hosts.end(),
                                                     [&](std::string const& a) { return Lower(a) == HostPart(authority); });
    if (!same && !allowed) {
      return Refuse(StatusCode::kPermissionDenied, "Cross-origin requests are refused");
    }
  }
  return std::nullopt;
}

std::optional<HttpResponse> HttpGuard::Refusal(HttpRequest const& request) const {
  Access access = AccessFor(request);
  if (access.kind == Access::Kind::kPublic) return std::nullopt;
  if (auto refused = BrowserRefusal(request)) return refused;
  if (access.kind == Access::Kind::kDelegated) return std::nullopt;
  if (access.json_body) {
    std::string type = Lower(request.Header("content-type"));
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    if (type != "application/json") {
      return Refuse(StatusCode::kInvalidArgument, "This call needs Content-Type: application/json");
    }
  }
  if (options_.tokens == nullptr) return std::nullopt;
  std::string authorization = request.Header("authorization");
  Status st = access.kind == Access::Kind::kAnyToken ? options_.tokens->CheckAny(authorization)
                                                      : options_.tokens->Check(authorization, access.role);
  if (!st.ok()) return Refuse(st.code(), st.message());
  return std::nullopt;
}

}  // namespace ferry
