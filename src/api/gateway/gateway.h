#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api/auth/tokens.h"
#include "api/http_server.h"
#include "broker/broker.h"
#include "control/function_service.h"

namespace ferry {

struct GatewayOptions {
  std::string default_project;
  // API tokens. A private HTTP function needs a bearer token with the invoker (or admin) role, and a webhook to a
  // topic without a secret one with the publisher role, whenever tokens are configured.
  TokenAuthenticator const* tokens = nullptr;
  // Webhooks: full topic name -> shared secret. A webhook to such a topic must carry an HMAC-SHA256 of its body.
  std::map<std::string, std::string> webhook_secrets;
};

// The public HTTP entry points into functions and topics:
//   /functions/{name}[/...] and /projects/{p}/locations/{r}/functions/{name}[/...]: HTTP functions. Method, path
//     below the function, query, headers and body go to the function; its status, headers and body come back.
//     A timeout answers 504. Never retried. Private unless allow_unauthenticated: no bearer token is 401, a token
//     without the invoker role is 403 (when tokens are configured; without any, Ferry is loopback-only and open).
//   POST /webhooks/{topic}: publishes the body (content type in the attribute "content-type") and answers 202
//     with {"messageId"}; with a secret for the topic, the X-Ferry-Signature-256 (or GitHub's
//     X-Hub-Signature-256) header must be "sha256=" + hex HMAC-SHA256 of the body, else 401; without one, a bearer
//     token with the publisher role (when tokens are configured). Ferry's internal topics (ferry-*) are refused.
class FunctionGateway {
 public:
  FunctionGateway(FunctionService& functions, Broker& broker, GatewayOptions options)
      : functions_(functions), broker_(broker), options_(std::move(options)) {}

  // Whether the path is one of the gateway's.
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);
  // Handle without blocking, for the server's I/O thread: takes a call to an HTTP function that has an instance
  // free at once (returns true and answers through `reply`), and leaves all else to Handle (returns false).
  bool TryHandle(HttpRequest const& request, boost::asio::io_context& io, HttpReply reply);

  // "sha256=" + lowercase hex HMAC-SHA256(secret, body). Public for tests.
  static std::string Signature(std::string const& secret, std::string const& body);

 private:
  // A function call, routed: the function's full name and the invocation to send it, or, when the call ends
  // here (no such function, 401, 403), the answer.
  struct Call {
    std::string function;
    Invocation invocation;
    std::optional<HttpResponse> answer;
  };
  // nullopt when the path names no function.
  std::optional<Call> RouteCall(HttpRequest const& request);
  static HttpResponse ToResponse(StatusOr<CallResult> result);
  HttpResponse Webhook(HttpRequest const& request, std::string const& topic);

  FunctionService& functions_;
  Broker& broker_;
  GatewayOptions options_;
};

}  // namespace ferry
