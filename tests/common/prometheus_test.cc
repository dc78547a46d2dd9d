#include "common/prometheus.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(PrometheusWriterTest, WritesFamiliesAndSamplesWithEscapedLabelValues) {
  PrometheusWriter w;
  w.Family("ferry_x_total", "counter", "Things.");
  w.Sample("ferry_x_total", {{"function", "projects/p/f"}, {"status", "ok"}}, 3);
  w.Sample("ferry_x_total", {{"function", "a\"b\\c\nd"}}, 0.5);
  w.Sample("ferry_up", {}, 1);
  EXPECT_EQ(w.Take(),
            "# HELP ferry_x_total Things.\n"
            "# TYPE ferry_x_total counter\n"
            "ferry_x_total{function=\"projects/p/f\",status=\"ok\"} 3\n"
            "ferry_x_total{function=\"a\\\"b\\\\c\\nd\"} 0.5\n"
            "ferry_up 1\n");
}

}  // namespace
}  // namespace ferry
