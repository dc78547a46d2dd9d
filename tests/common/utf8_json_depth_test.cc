#include <gtest/gtest.h>

#include <string>

#include "common/json_depth.h"
#include "common/time_util.h"
#include "common/utf8.h"

namespace ferry {
namespace {

TEST(Utf8Test, ValidatesAsUnicodeDefinesIt) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("caf\xE9"));            // Latin-1
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));           // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));       // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));       // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));   // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));           // cut short
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Utf8Test, ReplacesEachBadByteAndKeepsTheRest) {
  EXPECT_EQ(ToValidUtf8("plain"), "plain");
  EXPECT_EQ(ToValidUtf8("caf\xE9!"), "caf\xEF\xBF\xBD!");
  EXPECT_EQ(ToValidUtf8("\xE2\x82 \xC3\xA9"), "\xEF\xBF\xBD\xEF\xBF\xBD \xC3\xA9");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8(std::string("\x80\xFF\xF4\x90\x80\x80", 6))));
}

TEST(JsonDepthTest, CountsBracketsOutsideStrings) {
  EXPECT_TRUE(JsonNestingWithin(R"({"a":[1,{"b":[]}]})", 4));
  EXPECT_FALSE(JsonNestingWithin(R"({"a":[1,{"b":[]}]})", 3));
  EXPECT_TRUE(JsonNestingWithin(R"({"a":"[[[[[[[[[[["})", 1));       // brackets in a string do not count
  EXPECT_TRUE(JsonNestingWithin(R"({"a":"\"[[[[[[[["})", 1));        // nor after an escaped quote
  EXPECT_FALSE(JsonNestingWithin(std::string(65, '[') + std::string(65, ']')));
  EXPECT_TRUE(JsonNestingWithin(std::string(64, '[') + std::string(64, ']')));
  // Sequential (not nested) brackets never add up.
  std::string flat;
  for (int i = 0; i < 1000; ++i) flat += "[]";
  EXPECT_TRUE(JsonNestingWithin(flat, 1));
  // Unbalanced closers cannot make room for deeper nesting.
  EXPECT_FALSE(JsonNestingWithin("]]]]" + std::string(5, '['), 4));
}

TEST(TimeUtilTest, HumanDurationsThatWouldOverflowAreRefused) {
  EXPECT_FALSE(ParseHumanDuration("9223372036854775807").ok());
  EXPECT_FALSE(ParseHumanDuration("9999999999999999d").ok());
  EXPECT_FALSE(ParseHumanDuration("5000000000000000s5000000000000000s").ok());
  auto ok = ParseHumanDuration("2m30s");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 150'000);
}

}  // namespace
}  // namespace ferry
