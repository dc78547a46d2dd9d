#pragma once

#include <string>

#include "broker/broker.h"
#include "ferry/status.h"

namespace ferry {

// The broker's counters and the store's backlog in Prometheus text exposition format 0.0.4.
StatusOr<std::string> RenderMetrics(Broker& broker);

}  // namespace ferry
