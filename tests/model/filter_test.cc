#include "model/filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;

bool Matches(std::string_view filter, Attributes const& attributes) {
  auto parsed = Filter::Parse(filter);
  EXPECT_THAT(parsed, IsOk()) << filter;
  return parsed.ok() && parsed->Matches(attributes);
}

TEST(FilterTest, EmptyMatchesEverything) {
  EXPECT_TRUE(Matches("", {}));
  EXPECT_TRUE(Matches("  ", {{"a", "b"}}));
}

TEST(FilterTest, Predicates) {
  Attributes a{{"domain", "com"}, {"lang", "en-US"}, {"iana.org/language_tag", "en"}};
  EXPECT_TRUE(Matches(R"(attributes.domain = "com")", a));
  EXPECT_FALSE(Matches(R"(attributes.domain = "org")", a));
  EXPECT_TRUE(Matches(R"(attributes.domain != "org")", a));
  EXPECT_FALSE(Matches(R"(attributes.missing != "org")", a));  // a missing attribute matches neither = nor !=
  EXPECT_TRUE(Matches("attributes:domain", a));
  EXPECT_FALSE(Matches("attributes:missing", a));
  EXPECT_TRUE(Matches(R"(hasPrefix(attributes.lang, "en"))", a));
  EXPECT_FALSE(Matches(R"(hasPrefix(attributes.lang, "fr"))", a));
  EXPECT_TRUE(Matches(R"(attributes."iana.org/language_tag" = "en")", a));
  EXPECT_TRUE(Matches(R"(attributes.domain = "c\"om" OR attributes.domain="com")", a));
}

TEST(FilterTest, BooleanOperators) {
  Attributes a{{"x", "1"}, {"y", "2"}};
  EXPECT_TRUE(Matches(R"(attributes.x = "1" AND attributes.y = "2")", a));
  EXPECT_FALSE(Matches(R"(attributes.x = "1" AND attributes.y = "3")", a));
  EXPECT_TRUE(Matches(R"(attributes.x = "9" OR attributes.y = "2" OR attributes:z)", a));
  EXPECT_TRUE(Matches("NOT attributes:z", a));
  EXPECT_FALSE(Matches("-attributes:x", a));
  EXPECT_TRUE(Matches(R"((attributes.x = "9" OR attributes:y) AND NOT (attributes:z))", a));
  EXPECT_FALSE(Matches(R"(NOT (attributes:x AND attributes:y))", a));
}

TEST(FilterTest, BadFiltersAreInvalidArgument) {
  for (char const* bad : {R"(attributes.x = "1" AND attributes.y = "2" OR attributes:z)",  // mixed without parens
                          "attributes.x = 1", "attributes.x", "attribute:x", R"(hasPrefix(attributes.x))",
                          "(attributes:x", R"(attributes.x = "unterminated)", "attributes:x AND", "data = \"x\""}) {
    EXPECT_THAT(Filter::Parse(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(Filter::Parse("attributes:" + std::string(300, 'k')), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ferry
