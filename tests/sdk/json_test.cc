#include "ferry/json.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(SdkJsonTest, ReadsNestedValues) {
  Json j = Json::Parse(R"({"name": "ada", "items": [{"qty": 3}], "ok": true, "pi": 3.5})");
  EXPECT_TRUE(j.IsObject());
  EXPECT_EQ(j["name"].AsString(), "ada");
  EXPECT_EQ(j["items"][0]["qty"].AsInt(), 3);
  EXPECT_TRUE(j["ok"].AsBool());
  EXPECT_DOUBLE_EQ(j["pi"].AsDouble(), 3.5);
  EXPECT_EQ(j.size(), 4u);
  EXPECT_TRUE(j.Contains("items"));
}

TEST(SdkJsonTest, MissingOrWrongTypedValuesGiveFallbacks) {
  Json j = Json::Parse(R"({"n": 1})");
  EXPECT_TRUE(j["missing"].IsNull());
  EXPECT_TRUE(j["missing"]["deeper"][3].IsNull());
  EXPECT_EQ(j["n"].AsString("none"), "none");
  EXPECT_EQ(j["missing"].AsInt(7), 7);
  EXPECT_TRUE(Json::Parse("not json").IsNull());
  EXPECT_EQ(Json::Parse("{}").Dump(), "{}");
}

}  // namespace
}  // namespace ferry
