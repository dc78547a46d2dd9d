#include "control/sentry.h"

#include <cstdio>
#include <random>

#include <nlohmann/json.hpp>

#include "cli/http_client.h"
#include "common/clock.h"
#include "common/prometheus.h"
#include "common/time_util.h"

namespace ferry {
namespace {

constexpr std::size_t kMaxQueued = 256;
constexpr auto kLinesSettle = std::chrono::seconds(1);  // for the instance's last lines (read on another thread) to be stored
constexpr auto kSendTimeout = std::chrono::seconds(10);
constexpr int kLinesReported = 50;
constexpr auto kDrainOnStop = std::chrono::seconds(5);  // reports still waiting at shutdown get this long

// What a failure's status is called in Sentry's issue list (the exception type groups them).
std::string ErrorType(std::string const& status) {
  if (status == "timeout") return "FunctionTimeout";
  if (status == "oom") return "FunctionOutOfMemory";
  if (status == "crash") return "FunctionCrash";
  return "FunctionError";
}

std::string Level(std::string const& severity) {
  if (severity == "DEBUG") return "debug";
  if (severity == "WARNING") return "warning";
  if (severity == "ERROR" || severity == "CRITICAL" || severity == "ALERT" || severity == "EMERGENCY") return "error";
  return "info";
}

std::string NewEventId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return out;
}

}  // namespace

std::string SentryEnvelope(SentryDsn const& dsn, SentryFailure const& f, std::string const& event_id,
                           int64_t now_ms) {
  ExecutionRow const& r = f.row;
  std::string function = r.function.substr(r.function.rfind('/') + 1);
  nlohmann::json breadcrumbs = nlohmann::json::array();
  nlohmann::json lines = nlohmann::json::array();
  for (auto const& line : f.lines) {
    breadcrumbs.push_back({{"timestamp", static_cast<double>(line.time_ms) / 1000.0},
                           {"category", line.stream},
                           {"level", Level(line.severity)},
                           {"message", line.message}});
    lines.push_back(line.message);
  }
  std::string value = !r.error.empty() ? r.error : "execution finished with status '" + r.status + "'";
  nlohmann::json event = {
      {"event_id", event_id},
      {"timestamp", static_cast<double>(now_ms) / 1000.0},
      {"platform", "other"},
      {"level", r.status == "error" ? "error" : "fatal"},
      {"logger", "ferry"},
      {"transaction", function},
      {"server_name", f.server_name},
      {"exception",
       {{"values",
         nlohmann::json::array({{{"type", ErrorType(r.status)},
                                 {"value", value},
                                 {"module", function},
                                 {"mechanism", {{"type", "ferry"}, {"handled", false}}}}})}}},
      {"tags",
       {{"function", function},
        {"function_name", r.function},
        {"execution_id", r.execution_id},
        {"trigger", r.trigger},
        {"attempt", std::to_string(r.attempt)},
        {"status", r.status}}},
      {"extra",
       {{"message_id", r.message_id},
        {"duration_ms", r.duration_ms},
        {"started", FormatRfc3339(r.start_ms)},
        {"last_log_lines", lines}}},
      {"breadcrumbs", {{"values", breadcrumbs}}},
      {"fingerprint", {"ferry", r.function, r.status}},
      {"sdk", {{"name", "ferry"}, {"version", "0.1.0"}}},
  };
  if (!f.release.empty()) event["release"] = f.release;
  std::string payload = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json header = {{"event_id", event_id}, {"dsn", dsn.dsn}, {"sent_at", FormatRfc3339(now_ms)}};
  nlohmann::json item = {{"type", "event"}, {"length", payload.size()}, {"content_type", "application/json"}};
  return header.dump() + "\n" + item.dump() + "\n" + payload + "\n";
}

SentryReporter::SentryReporter(ExecutionLog& log, std::string server_name)
    : log_(log), server_name_(std::move(server_name)), thread_([this] { Run(); }) {}

SentryReporter::~SentryReporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + kDrainOnStop;
  }
  cv_.notify_all();
  thread_.join();
}

void SentryReporter::Report(SentryDsn dsn, ExecutionRow row, std::string release) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      ++dropped_;
      return;
    }
    queue_.push_back({std::move(dsn), std::move(row), std::move(release),
                      std::chrono::steady_clock::now() + kLinesSettle});
  }
  cv_.notify_one();
}

void SentryReporter::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    if (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_) {
      dropped_ += static_cast<int64_t>(queue_.size());
      return;
    }
    // Reports still waiting at shutdown go out (each bounded by its deadline), so the last failures are seen.
    if (!stopping_) cv_.wait_until(lock, queue_.front().due, [&] { return stopping_; });
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Send(p);
    lock.lock();
  }
}

void SentryReporter::Send(Pending const& p) {
  SentryFailure failure{p.row, p.release, server_name_, {}};
  try {
    (void)log_.Flush();
    if (auto lines = log_.Logs({.function = p.row.function, .execution_id = p.row.execution_id,
                                .limit = kLinesReported});
        lines.ok()) {
      failure.lines = *std::move(lines);
    }
    std::string body = SentryEnvelope(p.dsn, failure, NewEventId(), ToUnixMillis(std::chrono::system_clock::now()));
    auto sent = SendOnce(p.dsn.Endpoint(), "POST", p.dsn.EnvelopePath(), body, "application/x-sentry-envelope",
                         {{"X-Sentry-Auth", p.dsn.AuthHeader()}}, kSendTimeout);
    bool ok = sent.ok() && sent->status >= 200 && sent->status < 300;
    if (!ok) {
      std::fprintf(stderr, "ferry: sentry report for execution %s failed: %s\n", p.row.execution_id.c_str(),
                   sent.ok() ? ("HTTP " + std::to_string(sent->status)).c_str() : sent.status().message().c_str());
    }
    std::lock_guard lock(mu_);
    ++(ok ? sent_ : failed_);
  } catch (std::exception const& e) {  // a report never takes the daemon down
    std::fprintf(stderr, "ferry: sentry report failed: %s\n", e.what());
    std::lock_guard lock(mu_);
    ++failed_;
  }
}

std::string SentryReporter::RenderMetrics() {
  std::lock_guard lock(mu_);
  PrometheusWriter w;
  w.Family("ferry_sentry_reports_total", "counter", "Failed executions reported to Sentry, by result.");
  w.Sample("ferry_sentry_reports_total", {{"result", "sent"}}, static_cast<double>(sent_));
  w.Sample("ferry_sentry_reports_total", {{"result", "failed"}}, static_cast<double>(failed_));
  w.Sample("ferry_sentry_reports_total", {{"result", "dropped"}}, static_cast<double>(dropped_));
  return w.Take();
}

}  // namespace ferry
