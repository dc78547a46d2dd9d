#include "api/metrics.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(MetricsTest, WithLabelLabelsEverySampleAndNothingElse) {
  std::string text =
      "# HELP ferry_published_messages_total Messages published.\n"
      "# TYPE ferry_published_messages_total counter\n"
      "ferry_published_messages_total{topic=\"projects/p/topics/bar\"} 3\n"
      "ferry_up 1\n"
      "ferry_empty{} 0\n";
  EXPECT_EQ(WithLabel(text, "node", "host/12/a\"b"),
            "# HELP ferry_published_messages_total Messages published.\n"
            "# TYPE ferry_published_messages_total counter\n"
            "ferry_published_messages_total{node=\"host/12/a\\\"b\",topic=\"projects/p/topics/bar\"} 3\n"
            "ferry_up{node=\"host/12/a\\\"b\"} 1\n"
            "ferry_empty{node=\"host/12/a\\\"b\"} 0\n");
  EXPECT_EQ(WithLabel("", "node", "n"), "");
}

}  // namespace
}  // namespace ferry
