// Bytes as they arrive on the HTTP port: the server's request parser and decoding, the guard's checks and the
// role the path needs, then the Pub/Sub REST API on a real broker (every route, every request body). Never a
// crash, and every answer of the API is in its own shape: JSON, with a google.rpc.Status for an error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/auth/http_guard.h"
#include "api/http_server.h"
#include "api/rest/pubsub_rest.h"
#include "broker_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  static auto* fixture = new ferry::fuzzing::BrokerFixture();
  static auto* tokens = new ferry::TokenAuthenticator({});
  static auto* guard = new ferry::HttpGuard({.tokens = tokens, .bound_host = "127.0.0.1", .allowed_hosts = {}});
  auto request = ferry::ParseHttpRequest(std::string_view(reinterpret_cast<char const*>(data), size));
  if (!request) return 0;
  (void)ferry::AccessFor(*request);
  if (guard->Refusal(*request)) return 0;
  if (request->path.rfind("/v1/", 0) != 0) return 0;
  ferry::PubsubRestApi api(fixture->Next());
  ferry::HttpResponse response = api.Handle(*request);
  if (response.status < 200 || response.status > 599) std::abort();
  if (response.content_type == "application/json") {
    auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_discarded()) std::abort();
    if (response.status >= 400 && !(body.contains("error") && body["error"].contains("code"))) std::abort();
  }
  return 0;
}
