// Fails every time, to show retry and dead letter: each attempt waits longer (min_retry_delay doubling up to
// max_retry_delay); after max_delivery_attempts the message lands on the dead-letter topic with the last error.
#include "core/cloud_functions/always_fails.h"

#include <stdexcept>
#include <string>

namespace core::cloud_functions {

void always_fails(ferry::Event const& event, ferry::Context const& context) {
  throw std::runtime_error("always_fails failed on attempt " + std::to_string(event.delivery_attempt));
}

}  // namespace core::cloud_functions
