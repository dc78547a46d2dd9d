#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ferry/status.h"
#include "model/resources.h"

namespace ferry {

// A schedule's stored spec and firing state.
struct ScheduleRecord {
  std::string name;           // projects/{p}/locations/{r}/jobs/{j}
  std::string spec;           // JSON (model/schedule_spec.h)
  int64_t next_fire_ms = -1;  // the next tick; -1: none
  int64_t last_fired_ms = 0;  // the tick last fired (its scheduled time), 0: never
  bool paused = false;
};

// Schedules' firing state. Their specs come and go with deploys (store/deployment_store.h).
class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;

  [[nodiscard]] virtual StatusOr<std::vector<ScheduleRecord>> ListSchedules() = 0;
  // Fires tick `tick_ms` of a schedule once: unless a tick at or after it has already fired (false), publishes
  // `message` to `topic` (when given), records the tick as fired and sets the next one, all in one transaction,
  // so no tick fires twice, across restarts and nodes.
  [[nodiscard]] virtual StatusOr<bool> FireSchedule(std::string const& name, int64_t tick_ms, int64_t next_fire_ms,
                                                    std::string const& topic, PubsubMessage const* message,
                                                    int64_t now_ms) = 0;
  // Pauses or resumes; `next_fire_ms` is the next tick from now (set on resume).
  [[nodiscard]] virtual Status SetSchedulePaused(std::string const& name, bool paused, int64_t next_fire_ms) = 0;
};

}  // namespace ferry
