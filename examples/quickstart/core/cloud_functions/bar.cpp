// The guide's example function: count the practices and say the database works. Ferry logs "Started bar!
// Event: ..., Context: ..." before it and "Completed bar!" after it; a throw fails the event, and it is retried.
#include "core/cloud_functions/bar.h"

#include <string>

#include "core/db.h"

namespace core::cloud_functions {

void bar(ferry::Event const& event, ferry::Context const& context) {
  auto practices = Db::Get().CountPractices();
  ferry::log::Info("There are " + std::to_string(practices) + " practices and the DB totally works!");
}

}  // namespace core::cloud_functions
