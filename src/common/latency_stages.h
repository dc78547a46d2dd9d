#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace ferry {

// Where the time of one message or one call goes, stage by stage, as histograms in /metrics
// (ferry_stage_latency_seconds{stage=...}). Off unless `ferry serve --latency-stages`: then each stage costs two
// steady_clock reads and a few relaxed atomic adds; when off, one relaxed load. The stages are fixed, so recording
// takes no lock and allocates nothing on the paths it measures. docs/performance.md reads them.
enum class Stage {
  // The store's writer (SQLite group commit), for every write.
  kStoreQueue,   // a write waits in the queue until the writer takes its batch
  kStoreBatch,   // the writer runs the batch it took, up to its COMMIT
  kStoreSync,    // a durable write waits for the fdatasync after its commit
  kStoreReturn,  // the answer is set until the waiting caller runs again (a thread hand-off)
  // publish → StreamingPull → ack.
  kPublish,       // Broker::Publish, validation to answer
  kDeliverWake,   // a publish's commit wakes a waiting pull until that pull runs again
  kDeliverLease,  // the lease of the messages a pull takes
  kDeliverWrite,  // writing a StreamingPull response to gRPC
  kDeliverTotal,  // the store's publish call began until the message's StreamingPull response is written
  kAck,           // Broker::Acknowledge
  // HTTP functions (the event loop's path, TryInvokeAsync).
  kHttpCall,        // the gateway takes the call until its answer is handed to the HTTP server
  kFunctionCall,    // the request written to the instance until its answer is read
  kFunctionDrain,   // the answer read until the lines the instance wrote before it are handled
  kFunctionRecord,  // recording the finished execution (counters, the log rows queued)
  // Pub/Sub-triggered functions.
  kTriggerTotal,  // the store's publish call began until a worker takes the message to run it (first delivery)
  kCount,
};

namespace latency {

using Clock = std::chrono::steady_clock;

void Enable(bool on);
inline std::atomic<bool> g_enabled{false};
inline bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

void Record(Stage stage, Clock::duration elapsed);
inline void RecordSince(Stage stage, Clock::time_point start) {
  if (enabled()) Record(stage, Clock::now() - start);
}
// Now, when stages are recorded; otherwise the epoch (a time point that costs no clock read).
inline Clock::time_point Now() { return enabled() ? Clock::now() : Clock::time_point{}; }

// kDeliverTotal and kTriggerTotal follow messages by id from Publish to the stream's write or the trigger's worker:
// MarkPublished remembers the publish call's start of at most the last 10,000 messages published (only while
// enabled), and the first RecordDelivered of a message records `stage` and forgets it.
void MarkPublished(std::string const& message_id, Clock::time_point start);
void RecordDelivered(std::string const& message_id, Stage stage = Stage::kDeliverTotal);

// How many times `stage` was recorded.
int64_t Count(Stage stage);

// The histograms in Prometheus's text format; empty when never enabled.
std::string RenderMetrics();

// Times one scope as `stage` (when enabled at its start).
class ScopedStage {
 public:
  explicit ScopedStage(Stage stage) : stage_(stage), start_(Now()) {}
  Clock::time_point start() const { return start_; }
  ~ScopedStage() {
    if (start_ != Clock::time_point{}) Record(stage_, Clock::now() - start_);
  }
  ScopedStage(ScopedStage const&) = delete;
  ScopedStage& operator=(ScopedStage const&) = delete;

 private:
  Stage stage_;
  Clock::time_point start_;
};

}  // namespace latency
}  // namespace ferry
