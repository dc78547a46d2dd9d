#include "functions/instance_line.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(InstanceLineTest, AStructuredLineGivesItsMessageSeverityAndExecution) {
  InstanceLine l = ParseInstanceLine(false, R"({"severity":"ERROR","message":"db down","execution_id":"e-1","n":2})");
  EXPECT_EQ(l.message, "db down");
  EXPECT_EQ(l.severity, "ERROR");
  EXPECT_EQ(l.execution_id, "e-1");
  EXPECT_FALSE(l.is_stderr);
  EXPECT_TRUE(ParseInstanceLine(true, "x").is_stderr);
}

TEST(InstanceLineTest, EscapesAreDecoded) {
  EXPECT_EQ(ParseInstanceLine(false, R"({"message":"caf\u00e9\tok"})").message, "caf\xc3\xa9\tok");
}

TEST(InstanceLineTest, OnlyTopLevelStringsCountAndTheLastOfARepeatedKey) {
  InstanceLine nested = ParseInstanceLine(false, R"({"x":{"message":"inner","severity":"DEBUG"},"message":"top"})");
  EXPECT_EQ(nested.message, "top");
  EXPECT_EQ(nested.severity, "");
  EXPECT_EQ(ParseInstanceLine(false, R"({"message":1,"message":"second"})").message, "second");
  // The last value is not a string: no message, so the line is its own message.
  std::string line = R"({"message":"first","message":{"a":"b"},"severity":"INFO"})";
  InstanceLine last = ParseInstanceLine(false, line);
  EXPECT_EQ(last.message, line);
  EXPECT_EQ(last.severity, "INFO");
}

TEST(InstanceLineTest, AnythingElseIsAPlainLine) {
  std::vector<std::string> const lines = {"plain text",
                                         R"({"message":"ok"} trailing)",
                                         R"({"message":"cut)",
                                         std::string(R"({"message":")") + "\xff\"}",
                                         R"({"severity":"INFO"})",
                                         // Nested deeper than the JSON limit, though well formed.
                                         R"({"a":)" + std::string(100, '[') + std::string(100, ']') +
                                             R"(,"message":"x"})"};
  for (std::string const& line : lines) {
    InstanceLine l = ParseInstanceLine(false, line);
    EXPECT_EQ(l.message, line);
    EXPECT_EQ(l.execution_id, "");
  }
}

}  // namespace
}  // namespace ferry
