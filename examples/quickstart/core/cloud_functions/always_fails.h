#pragma once

#include <ferry/function.h>

namespace core::cloud_functions {

void always_fails(ferry::Event const& event, ferry::Context const& context);

}  // namespace core::cloud_functions
