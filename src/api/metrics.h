#pragma once

#include <string>

#include "broker/broker.h"
#include "ferry/status.h"

namespace ferry {

// The broker's counters and the store's backlog in Prometheus text exposition format 0.0.4.
StatusOr<std::string> RenderMetrics(Broker& broker);

// `text` (the exposition format) with the label name="value" added to every sample, first among its labels: each
// node of a cluster labels its metrics with its name, so a scrape of every node adds up.
std::string WithLabel(std::string const& text, std::string const& name, std::string const& value);

}  // namespace ferry
