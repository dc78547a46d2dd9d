#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "push/push_policy.h"
#include "storage/beneath.h"
#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;

sockaddr_storage Address(char const* ip, uint16_t port) {
  sockaddr_storage s{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&s);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&s);
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip, &v6->sin6_addr), 1) << ip;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
  }
  return s;
}

bool Allowed(PushPolicy const& policy, char const* ip, uint16_t port = 80) {
  auto s = Address(ip, port);
  return policy.Allowed(*reinterpret_cast<sockaddr const*>(&s));
}

TEST(PushPolicyTest, InternalAddressesNeedAnAllowance) {
  auto policy = PushPolicy::Make({});
  ASSERT_THAT(policy, IsOk());
  for (char const* ip : {"127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.5", "192.168.1.1", "169.254.169.254",
                         "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1",
                         "::ffff:169.254.169.254"}) {
    EXPECT_FALSE(Allowed(**policy, ip)) << ip;
  }
  for (char const* ip : {"8.8.8.8", "93.184.216.34", "2606:4700::1111"}) EXPECT_TRUE(Allowed(**policy, ip)) << ip;
}

TEST(PushPolicyTest, AllowListOpensBlocksButNeverFerrysOwnPort) {
  auto policy = PushPolicy::Make({"127.0.0.1", "10.0.0.0/8"});
  ASSERT_THAT(policy, IsOk());
  (*policy)->set_self_port(8085);
  EXPECT_TRUE(Allowed(**policy, "127.0.0.1", 9000));
  EXPECT_FALSE(Allowed(**policy, "127.0.0.2", 9000));
  EXPECT_TRUE(Allowed(**policy, "10.9.8.7"));
  EXPECT_FALSE(Allowed(**policy, "192.168.1.1"));
  EXPECT_FALSE(Allowed(**policy, "127.0.0.1", 8085));  // Ferry itself
  EXPECT_FALSE(PushPolicy::Make({"not-an-address"}).ok());
  EXPECT_FALSE(PushPolicy::Make({"10.0.0.0/33"}).ok());
}

TEST(PushPolicyTest, EndpointsAreHttpUrlsWithAHostAndAPort) {
  auto e = ParsePushEndpoint("http://example.com:8080/a/b?c=d");
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->host, "example.com");
  EXPECT_EQ(e->port, "8080");
  EXPECT_EQ(e->target, "/a/b?c=d");
  auto v6 = ParsePushEndpoint("http://[::1]:9/x");
  ASSERT_THAT(v6, IsOk());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "9");
  for (char const* bad : {"https://example.com/", "ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:99999/",
                          "http://user@h/", "http://h/a b", "http://h:8a/"}) {
    EXPECT_FALSE(ParsePushEndpoint(bad).ok()) << bad;
  }
  auto policy = PushPolicy::Make({});
  ASSERT_THAT(policy, IsOk());
  EXPECT_FALSE((*policy)->CheckEndpoint("http://127.0.0.1:8085/ferry/v1/deploy").ok());
  EXPECT_FALSE((*policy)->CheckEndpoint("http://localhost/x").ok());
  EXPECT_THAT((*policy)->CheckEndpoint(""), IsOk());  // a pull subscription
}

TEST(ObjectNameTest, RefusesWhatIsNoPathBelowTheBucket) {
  for (char const* good : {"a.txt", "dir/sub/file.csv", "caf\xC3\xA9.txt", "a..b"}) {
    EXPECT_THAT(CheckObjectName(good), IsOk()) << good;
  }
  for (std::string bad : {std::string(""), std::string("/etc/passwd"), std::string("a/../b"), std::string("../x"),
                          std::string(".hidden"), std::string("d/.git/config"), std::string("a//b"),
                          std::string("caf\xE9.txt"), std::string("a\nb"), std::string("x\0y", 3),
                          std::string(300, 'a'), std::string(1100, 'a')}) {
    EXPECT_FALSE(CheckObjectName(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace ferry
