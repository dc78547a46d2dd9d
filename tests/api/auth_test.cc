#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/auth/http_guard.h"
#include "api/auth/tokens.h"
#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;

constexpr char kAdmin[] = "admin-secret-0123456789";
constexpr char kPublisher[] = "publisher-secret-0123456789";
constexpr char kViewerInvoker[] = "viewer-invoker-0123456789";

TokenAuthenticator Tokens() {
  auto grants = ParseTokenList(std::string("admin=") + kAdmin + "\n# a comment\n\npublisher=" + kPublisher +
                                   "\nviewer,invoker=" + kViewerInvoker + "\n",
                               "test");
  EXPECT_THAT(grants, IsOk());
  return TokenAuthenticator(*grants);
}

std::string Bearer(char const* secret) { return std::string("Bearer ") + secret; }

TEST(TokensTest, GrantsRolesByEntry) {
  auto tokens = Tokens();
  EXPECT_TRUE(tokens.enabled());
  EXPECT_THAT(tokens.Check(Bearer(kPublisher), Role::kPublisher), IsOk());
  EXPECT_EQ(tokens.Check(Bearer(kPublisher), Role::kSubscriber).code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(tokens.Check(Bearer(kViewerInvoker), Role::kViewer), IsOk());
  EXPECT_THAT(tokens.Check(Bearer(kViewerInvoker), Role::kInvoker), IsOk());
  EXPECT_EQ(tokens.Check(Bearer(kViewerInvoker), Role::kAdmin).code(), StatusCode::kPermissionDenied);
}

TEST(TokensTest, AdminHoldsEveryRole) {
  auto tokens = Tokens();
  for (Role role : {Role::kAdmin, Role::kViewer, Role::kPublisher, Role::kSubscriber, Role::kInvoker}) {
    EXPECT_THAT(tokens.Check(Bearer(kAdmin), role), IsOk()) << RoleName(role);
  }
}

TEST(TokensTest, MissingOrUnknownTokenIsUnauthenticated) {
  auto tokens = Tokens();
  EXPECT_EQ(tokens.Check("", Role::kViewer).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(tokens.Check("Bearer not-a-configured-token", Role::kViewer).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(tokens.Check(std::string("Basic ") + kAdmin, Role::kViewer).code(), StatusCode::kUnauthenticated);
  // A prefix of a real secret is not the secret.
  EXPECT_EQ(tokens.Check(Bearer("admin-secret"), Role::kViewer).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(tokens.CheckAny("").code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(tokens.CheckAny(Bearer(kPublisher)), IsOk());
}

TEST(TokensTest, BearerSchemeIsCaseInsensitive) {
  auto tokens = Tokens();
  EXPECT_THAT(tokens.Check(std::string("bearer ") + kAdmin, Role::kAdmin), IsOk());
  EXPECT_THAT(tokens.Check(std::string("BEARER ") + kAdmin, Role::kAdmin), IsOk());
}

TEST(TokensTest, NoTokensMeansNoChecks) {
  TokenAuthenticator none({});
  EXPECT_FALSE(none.enabled());
  EXPECT_THAT(none.Check("", Role::kAdmin), IsOk());
}

TEST(TokensTest, RefusesBadEntries) {
  EXPECT_FALSE(ParseTokenGrant("root=0123456789abcdef0123").ok());     // unknown role
  auto weak = ParseTokenGrant("admin=short");                          // guessable: accepted, marked for a warning
  ASSERT_THAT(weak, IsOk());
  EXPECT_TRUE(weak->short_secret);
  EXPECT_FALSE(ParseTokenGrant("admin=").ok());                        // no secret
  EXPECT_FALSE(ParseTokenGrant("0123456789abcdef0123").ok());          // no role
  EXPECT_FALSE(ParseTokenGrant("admin=0123456789abcdef\x01x").ok());   // not printable
  auto list = ParseTokenList("admin=0123456789abcdef0123\nbogus", "tokens.txt");
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.status().message(), ::testing::HasSubstr("tokens.txt:2"));
  // The environment's form: entries separated by spaces.
  auto env = ParseTokenList("admin=0123456789abcdef0123 publisher=abcdef0123456789abcd", "FERRY_TOKENS");
  ASSERT_THAT(env, IsOk());
  EXPECT_EQ(env->size(), 2u);
}

HttpRequest Request(std::string method, std::string path, std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(headers);
  return r;
}

TEST(AccessTest, EachSurfaceNeedsItsRole) {
  auto role = [](char const* method, char const* path) {
    Access a = AccessFor(Request(method, path, {}));
    EXPECT_EQ(a.kind, Access::Kind::kRole) << method << " " << path;
    return a.role;
  };
  EXPECT_EQ(role("POST", "/ferry/v1/deploy"), Role::kAdmin);
  EXPECT_EQ(role("DELETE", "/ferry/v1/projects/p/functions/f"), Role::kAdmin);
  EXPECT_EQ(role("GET", "/ferry/v1/projects/p/functions"), Role::kViewer);
  EXPECT_EQ(role("GET", "/ferry/v1/projects/p/functions/f/logs"), Role::kViewer);
  EXPECT_EQ(role("POST", "/ferry/v1/projects/p/functions/f:call"), Role::kInvoker);
  EXPECT_EQ(role("POST", "/ferry/v1/projects/p/jobs/j:run"), Role::kAdmin);
  // Dead letters: a viewer reads them (as it reads logs); only an admin sends them back or drops them.
  EXPECT_EQ(role("GET", "/ferry/v1/projects/p/subscriptions/s/deadLetters"), Role::kViewer);
  EXPECT_EQ(role("POST", "/ferry/v1/projects/p/subscriptions/s/deadLetters:redrive"), Role::kAdmin);
  EXPECT_EQ(role("POST", "/ferry/v1/projects/p/subscriptions/s/deadLetters:purge"), Role::kAdmin);
  // The console's data: the overview and a peek are reads.
  EXPECT_EQ(role("GET", "/ferry/v1/projects/p/overview"), Role::kViewer);
  EXPECT_EQ(role("GET", "/ferry/v1/projects/p/subscriptions/s/messages"), Role::kViewer);
  EXPECT_EQ(role("GET", "/metrics"), Role::kViewer);
  // Cloud Scheduler jobs: a viewer reads them; creating, changing, running, pausing is an admin's.
  EXPECT_EQ(role("GET", "/v1/projects/p/locations/r/jobs"), Role::kViewer);
  EXPECT_EQ(role("POST", "/v2/entries:list"), Role::kViewer);  // reading logs, though by POST
  EXPECT_EQ(role("GET", "/v1/projects/p/locations/r/functions/f"), Role::kViewer);
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/functions/f:call"), Role::kInvoker);
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/functions"), Role::kAdmin);
  // gcloud functions deploy / delete: an admin's; its look-ups and the operation it polls are reads.
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/functions:generateUploadUrl"), Role::kAdmin);
  EXPECT_EQ(role("PATCH", "/v1/projects/p/locations/r/functions/f"), Role::kAdmin);
  EXPECT_EQ(role("DELETE", "/v1/projects/p/locations/r/functions/f"), Role::kAdmin);
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/functions/f:setIamPolicy"), Role::kAdmin);
  EXPECT_EQ(role("GET", "/v1/projects/p/locations/r/functions/f:getIamPolicy"), Role::kViewer);
  EXPECT_EQ(role("GET", "/v1/operations/abc"), Role::kViewer);
  EXPECT_EQ(role("GET", "/v1/projects/p/services/cloudbuild.googleapis.com"), Role::kViewer);
  EXPECT_EQ(role("GET", "/v1/projects/p"), Role::kViewer);
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/jobs"), Role::kAdmin);
  EXPECT_EQ(role("PATCH", "/v1/projects/p/locations/r/jobs/j"), Role::kAdmin);
  EXPECT_EQ(role("POST", "/v1/projects/p/locations/r/jobs/j:run"), Role::kAdmin);
  EXPECT_EQ(role("POST", "/v1/projects/p/topics/t:publish"), Role::kPublisher);
  EXPECT_EQ(role("PUT", "/v1/projects/p/topics/t"), Role::kAdmin);
  EXPECT_EQ(role("GET", "/v1/projects/p/topics"), Role::kViewer);
  EXPECT_EQ(role("POST", "/v1/projects/p/subscriptions/s:pull"), Role::kSubscriber);
  EXPECT_EQ(role("POST", "/v1/projects/p/subscriptions/s:acknowledge"), Role::kSubscriber);
  EXPECT_EQ(role("POST", "/v1/projects/p/subscriptions/s:modifyAckDeadline"), Role::kSubscriber);
  EXPECT_EQ(role("POST", "/v1/projects/p/subscriptions/s:seek"), Role::kSubscriber);
  EXPECT_EQ(role("POST", "/v1/projects/p/subscriptions/s:modifyPushConfig"), Role::kAdmin);
  EXPECT_EQ(role("DELETE", "/v1/projects/p/subscriptions/s"), Role::kAdmin);
  EXPECT_EQ(role("GET", "/storage/v1/b/b/o"), Role::kSubscriber);
  EXPECT_EQ(role("GET", "/download/storage/v1/b/b/o/x"), Role::kSubscriber);
  EXPECT_EQ(role("POST", "/upload/storage/v1/b/b/o"), Role::kPublisher);
  EXPECT_EQ(role("DELETE", "/storage/v1/b/b/o/x"), Role::kPublisher);
  EXPECT_EQ(AccessFor(Request("GET", "/healthz", {})).kind, Access::Kind::kPublic);
  // A function's source upload: its URL's random id, which only an admin gets, is the permission (a signed URL).
  EXPECT_EQ(AccessFor(Request("PUT", "/upload/functions/0123456789abcdef0123456789abcdef.zip", {})).kind,
            Access::Kind::kDelegated);
  // The console's page and script hold no data; anything else on /console is not public.
  EXPECT_EQ(AccessFor(Request("GET", "/console", {})).kind, Access::Kind::kPublic);
  EXPECT_EQ(AccessFor(Request("GET", "/console/console.js", {})).kind, Access::Kind::kPublic);
  EXPECT_EQ(AccessFor(Request("POST", "/console", {})).kind, Access::Kind::kRole);
  EXPECT_EQ(AccessFor(Request("GET", "/consoles", {})).kind, Access::Kind::kRole);
  EXPECT_EQ(AccessFor(Request("GET", "/ferry/v1/info", {})).kind, Access::Kind::kAnyToken);
  EXPECT_EQ(AccessFor(Request("POST", "/functions/f", {})).kind, Access::Kind::kDelegated);
  EXPECT_EQ(AccessFor(Request("POST", "/webhooks/t", {})).kind, Access::Kind::kDelegated);
}

TEST(HttpGuardTest, CrossSiteTextPlainDeployIsRefused) {
  HttpGuard guard({.bound_host = "127.0.0.1"});
  auto simple = Request("POST", "/ferry/v1/deploy", {{"host", "127.0.0.1:8085"}, {"content-type", "text/plain"}});
  auto refused = guard.Refusal(simple);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 400);
  auto no_type = Request("POST", "/ferry/v1/projects/p/functions/f:call", {{"host", "127.0.0.1:8085"}});
  EXPECT_TRUE(guard.Refusal(no_type).has_value());
  auto json = Request("POST", "/ferry/v1/deploy",
                      {{"host", "127.0.0.1:8085"}, {"content-type", "application/json; charset=utf-8"}});
  EXPECT_FALSE(guard.Refusal(json).has_value());
}

TEST(HttpGuardTest, ForeignOriginIsRefused) {
  HttpGuard guard({.bound_host = "127.0.0.1"});
  auto foreign = Request("POST", "/ferry/v1/deploy", {{"host", "127.0.0.1:8085"},
                                                      {"content-type", "application/json"},
                                                      {"origin", "http://evil.example"}});
  auto refused = guard.Refusal(foreign);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 403);
  auto same = Request("GET", "/ferry/v1/projects/p/functions",
                      {{"host", "localhost:8085"}, {"origin", "http://localhost:8085"}});
  EXPECT_FALSE(guard.Refusal(same).has_value());
  // A webhook is the gateway's to authorize, but a page on another site still cannot send one.
  auto hook = Request("POST", "/webhooks/t", {{"host", "127.0.0.1:8085"}, {"origin", "https://evil.example"}});
  EXPECT_TRUE(guard.Refusal(hook).has_value());
}

TEST(HttpGuardTest, DnsRebindingHostIsRefusedWithoutTokens) {
  HttpGuard open({.bound_host = "127.0.0.1", .allowed_hosts = {"ferry.internal"}});
  auto rebound = Request("GET", "/ferry/v1/projects/p/functions", {{"host", "attacker.example:8085"}});
  auto refused = open.Refusal(rebound);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 403);
  for (char const* host : {"127.0.0.1:8085", "localhost", "[::1]:8085", "10.1.2.3:8085", "ferry.internal:8085"}) {
    EXPECT_FALSE(open.Refusal(Request("GET", "/v1/projects/p/topics", {{"host", host}})).has_value()) << host;
  }
  // With tokens a page cannot learn one, so any name reaches Ferry (which then wants the token).
  auto tokens = Tokens();
  HttpGuard closed({.tokens = &tokens, .bound_host = "0.0.0.0"});
  auto named = Request("GET", "/v1/projects/p/topics", {{"host", "ferry.example.com"}, {"authorization", Bearer(kAdmin)}});
  EXPECT_FALSE(closed.Refusal(named).has_value());
}

TEST(HttpGuardTest, TokensAreCheckedPerRole) {
  auto tokens = Tokens();
  HttpGuard guard({.tokens = &tokens, .bound_host = "127.0.0.1"});
  auto publish = [&](std::string authorization) {
    return guard.Refusal(Request("POST", "/v1/projects/p/topics/t:publish",
                                 {{"host", "127.0.0.1"}, {"content-type", "application/json"},
                                  {"authorization", std::move(authorization)}}));
  };
  EXPECT_FALSE(publish(Bearer(kPublisher)).has_value());
  EXPECT_EQ(publish("").value().status, 401);
  EXPECT_EQ(publish(Bearer(kViewerInvoker)).value().status, 403);
  EXPECT_FALSE(guard.Refusal(Request("GET", "/healthz", {})).has_value());
  EXPECT_EQ(guard.Refusal(Request("GET", "/metrics", {{"host", "127.0.0.1"}})).value().status, 401);
}

}  // namespace
}  // namespace ferry
