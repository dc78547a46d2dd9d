#include "model/log_filter.h"

#include <map>

#include <gtest/gtest.h>

namespace ferry {
namespace {

using Entry = std::map<std::string, std::string>;

bool Match(std::string const& filter, Entry const& e) {
  auto f = LogFilter::Parse(filter);
  EXPECT_TRUE(f.ok()) << filter << ": " << f.status().message();
  if (!f.ok()) return false;
  return f->Matches([&](std::string const& path) -> std::optional<std::string> {
    auto it = e.find(path);
    return it == e.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

Entry Line(std::string fn, std::string severity, std::string time, std::string execution = "e1") {
  return {{"resource.type", "cloud_function"},
          {"resource.labels.function_name", fn},
          {"resource.labels.region", "local"},
          {"logName", "projects/p/logs/cloudfunctions.googleapis.com%2Fcloud-functions"},
          {"labels.execution_id", execution},
          {"severity", severity},
          {"timestamp", time},
          {"textPayload", "Completed bar!"}};
}

// The filter gcloud functions logs read sends (gcloud 528), with each of its optional clauses.
TEST(LogFilterTest, WhatGcloudFunctionsLogsReadSends) {
  std::string const base =
      "(resource.type=\"cloud_function\" resource.labels.region=\"local\" logName:\"cloud-functions\" "
      "resource.labels.function_name=\"bar\") OR (resource.type=\"cloud_run_revision\" "
      "resource.labels.location=\"local\" logName:\"run.googleapis.com\" labels.\"goog-managed-by\"=\"cloudfunctions\" "
      "resource.labels.service_name=\"bar\")";
  auto bar = Line("bar", "INFO", "2026-11-30T00:00:01.000Z");
  EXPECT_TRUE(Match(base + " timestamp>=\"2026-11-23T07:38:52.156387Z\"", bar));
  EXPECT_FALSE(Match(base + " timestamp>=\"2026-12-01T00:00:00Z\"", bar));
  EXPECT_FALSE(Match(base, Line("baz", "INFO", "2026-11-30T00:00:01.000Z")));
  EXPECT_TRUE(Match(base + " labels.execution_id=\"e1\"", bar));
  EXPECT_FALSE(Match(base + " labels.execution_id=\"e2\"", bar));
  EXPECT_FALSE(Match(base + " severity>=ERROR", bar));
  EXPECT_TRUE(Match(base + " severity>=ERROR", Line("bar", "ERROR", "2026-11-30T00:00:01.000Z")));
  EXPECT_TRUE(Match(base + " severity>=WARNING", Line("bar", "CRITICAL", "2026-11-30T00:00:01.000Z")));
}

TEST(LogFilterTest, OperatorsAndLogic) {
  auto e = Line("bar", "INFO", "2026-11-30T00:00:01.000Z");
  EXPECT_TRUE(Match("", e));
  EXPECT_TRUE(Match("textPayload:completed", e));  // has: a case-insensitive substring
  EXPECT_FALSE(Match("textPayload=completed", e));
  EXPECT_TRUE(Match("NOT severity=ERROR", e));
  EXPECT_TRUE(Match("-severity=ERROR", e));
  EXPECT_TRUE(Match("severity=ERROR OR resource.labels.function_name=bar", e));
  EXPECT_FALSE(Match("severity=ERROR AND resource.labels.function_name=bar", e));
  // OR binds tighter than AND, as in the Logging query language.
  EXPECT_FALSE(Match("severity=INFO OR severity=ERROR resource.labels.function_name=baz", e));
  EXPECT_TRUE(Match("resource.labels.function_name=baz OR severity=INFO textPayload:bar", e));
  EXPECT_TRUE(Match("((severity<WARNING))", e));
  EXPECT_TRUE(Match("severity>=200", e));  // a number, as Logging takes it
  EXPECT_TRUE(Match("jsonPayload.x!=1", e));  // a field the entry lacks matches only !=
  EXPECT_FALSE(Match("jsonPayload.x=1", e));
  EXPECT_TRUE(Match("resource.labels.region=local", e));
}

TEST(LogFilterTest, BadFiltersSayWhere) {
  for (char const* bad : {"severity>=", "(severity=ERROR", "severity=ERROR)", "\"unterminated", "=x", "a b",
                          "OR", "severity = ERROR AND"}) {
    auto f = LogFilter::Parse(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(f.status().message().rfind("filter: ", 0), 0u) << f.status().message();
  }
  EXPECT_FALSE(LogFilter::Parse(std::string(100, '(') + "a=b" + std::string(100, ')')).ok());  // too deep
  EXPECT_FALSE(LogFilter::Parse(std::string(9000, 'a')).ok());                             // too long
}

}  // namespace
}  // namespace ferry
