#include "common/latency_stages.h"

#include <array>
#include <cstdio>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "common/prometheus.h"

namespace ferry::latency {
namespace {

// 1-2-5 steps from 1 µs to 1 s: fine enough to tell a hand-off (tens of µs) from an fsync (hundreds).
constexpr std::array<int64_t, 19> kBoundsNanos = {
    1'000,      2'000,      5'000,      10'000,      20'000,      50'000,      100'000,
    200'000,    500'000,    1'000'000,  2'000'000,   5'000'000,   10'000'000,  20'000'000,
    50'000'000, 100'000'000, 200'000'000, 500'000'000, 1'000'000'000};

constexpr std::array<char const*, static_cast<std::size_t>(Stage::kCount)> kNames = {
    "store_queue",   "store_batch",   "store_sync",    "store_return", "publish",
    "deliver_wake",  "deliver_lease", "deliver_write", "deliver_total", "ack",
    "http_call",     "function_call", "function_drain", "function_record", "trigger_total"};

struct Histogram {
  std::array<std::atomic<int64_t>, kBoundsNanos.size() + 1> buckets{};  // the last: above every bound
  std::atomic<int64_t> sum_nanos{0};
  std::atomic<int64_t> count{0};
};

std::array<Histogram, static_cast<std::size_t>(Stage::kCount)> g_histograms;
std::atomic<bool> g_ever_enabled{false};

std::mutex g_published_mu;
std::unordered_map<std::string, Clock::time_point> g_published;  // GUARDED_BY(g_published_mu)
std::deque<std::string> g_published_order;                        // GUARDED_BY(g_published_mu): oldest first
constexpr std::size_t kMaxPublished = 10'000;

}  // namespace

void MarkPublished(std::string const& message_id, Clock::time_point start) {
  if (!enabled()) return;
  std::lock_guard lock(g_published_mu);
  if (!g_published.emplace(message_id, start).second) return;
  g_published_order.push_back(message_id);
  if (g_published_order.size() > kMaxPublished) {
    g_published.erase(g_published_order.front());
    g_published_order.pop_front();
  }
}

void RecordDelivered(std::string const& message_id, Stage stage) {
  if (!enabled()) return;
  Clock::time_point start;
  {
    std::lock_guard lock(g_published_mu);
    auto it = g_published.find(message_id);
    if (it == g_published.end()) return;
    start = it->second;  // the first delivery only: a redelivery is not this path
    g_published.erase(it);
  }
  Record(stage, Clock::now() - start);
}

void Enable(bool on) {
  if (on) g_ever_enabled = true;
  g_enabled.store(on, std::memory_order_relaxed);
}

void Record(Stage stage, Clock::duration elapsed) {
  int64_t nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count();
  auto& h = g_histograms[static_cast<std::size_t>(stage)];
  std::size_t i = 0;
  while (i < kBoundsNanos.size() && nanos > kBoundsNanos[i]) ++i;
  h.buckets[i].fetch_add(1, std::memory_order_relaxed);
  h.sum_nanos.fetch_add(nanos, std::memory_order_relaxed);
  h.count.fetch_add(1, std::memory_order_relaxed);
}

int64_t Count(Stage stage) {
  return g_histograms[static_cast<std::size_t>(stage)].count.load(std::memory_order_relaxed);
}

std::string RenderMetrics() {
  if (!g_ever_enabled) return {};
  PrometheusWriter w;
  constexpr char const* kName = "ferry_stage_latency_seconds";
  w.Family(kName, "histogram", "Time spent in each stage of a message or call (ferry serve --latency-stages).");
  for (std::size_t s = 0; s < kNames.size(); ++s) {
    auto const& h = g_histograms[s];
    int64_t cumulative = 0;
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i].load(std::memory_order_relaxed);
      char bound[32];
      if (i < kBoundsNanos.size()) std::snprintf(bound, sizeof bound, "%g", static_cast<double>(kBoundsNanos[i]) / 1e9);
      w.Sample("ferry_stage_latency_seconds_bucket", {{"stage", kNames[s]}, {"le", i < kBoundsNanos.size() ? bound : "+Inf"}},
               static_cast<double>(cumulative));
    }
    w.Sample("ferry_stage_latency_seconds_sum", {{"stage", kNames[s]}},
             static_cast<double>(h.sum_nanos.load(std::memory_order_relaxed)) / 1e9);
    w.Sample("ferry_stage_latency_seconds_count", {{"stage", kNames[s]}},
             static_cast<double>(h.count.load(std::memory_order_relaxed)));
  }
  return w.Take();
}

}  // namespace ferry::latency
