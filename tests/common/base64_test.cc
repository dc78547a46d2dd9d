#include "common/base64.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(Base64Test, EncodesWithPadding) {
  EXPECT_EQ(Base64Encode("{}"), "e30=");
  EXPECT_EQ(Base64Encode("hello world"), "aGVsbG8gd29ybGQ=");
  EXPECT_EQ(Base64Encode("m1"), "bTE=");
  EXPECT_EQ(Base64Encode(""), "");
}

TEST(Base64Test, DecodesStandardAndUrlSafe) {
  EXPECT_EQ(Base64Decode("aGVsbG8gd29ybGQ="), "hello world");
  EXPECT_EQ(Base64Decode("aGVsbG8gd29ybGQ"), "hello world");
  EXPECT_EQ(Base64Decode("-_8="), std::string("\xfb\xff", 2));
  EXPECT_EQ(Base64Decode("+/8="), std::string("\xfb\xff", 2));
}

TEST(Base64Test, RejectsInvalidInput) {
  EXPECT_FALSE(Base64Decode("not base64!"));
  EXPECT_FALSE(Base64Decode("a"));
  EXPECT_FALSE(Base64Decode("ab c"));
}

TEST(Base64Test, RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(Base64Decode(Base64Encode(all)), all);
}

}  // namespace
}  // namespace ferry
