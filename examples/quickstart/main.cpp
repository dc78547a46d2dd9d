// The one entrypoint file: one-time setup, then the table of exported functions. FUNCTION_TARGET (the
// `entry_point` in ferry.yaml) picks the one an instance serves.
#include <ferry/function.h>

#include "core/cloud_functions/always_fails.h"
#include "core/cloud_functions/bar.h"
#include "core/db.h"

int main(int argc, char** argv) {
  core::Db::Open();  // once per instance, shared by every invocation
  return ferry::Run(argc, argv, ferry::Functions()
                                    .Event("bar", core::cloud_functions::bar)
                                    .Event("always_fails", core::cloud_functions::always_fails));
}
