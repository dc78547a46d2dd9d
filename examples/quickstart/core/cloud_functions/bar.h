#pragma once

#include <ferry/function.h>

namespace core::cloud_functions {

void bar(ferry::Event const& event, ferry::Context const& context);

}  // namespace core::cloud_functions
