#include "store/stored_json.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(StoredJsonTest, AttributesComeBackAsTheyWereStored) {
  Attributes const attrs{{"a", "1"}, {"quote\"d", "line\nbreak"}, {"ünï", "\u00e9\U0001F600"}, {"empty", ""}};
  auto back = DecodeAttributes(EncodeAttributes(attrs));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, attrs);
  auto none = DecodeAttributes(EncodeAttributes({}));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(StoredJsonTest, AnythingButAFlatObjectOfStringsIsCorrupt) {
  for (char const* text : {"", "{", "[]", "\"a\"", "{\"a\":1}", "{\"a\":null}", "{\"a\":{\"b\":\"c\"}}",
                           "{\"a\":[\"b\"]}", "{\"a\":\"b\"} x", "{\"a\":\"b\"}{}", "{\"a\":true}"}) {
    auto decoded = DecodeAttributes(text);
    ASSERT_FALSE(decoded.ok()) << text;
    EXPECT_EQ(decoded.status().code(), StatusCode::kInternal) << text;
  }
}

}  // namespace
}  // namespace ferry
