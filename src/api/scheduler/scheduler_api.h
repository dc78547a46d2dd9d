#pragma once

#include <string_view>

#include "api/http_server.h"
#include "control/scheduler.h"

namespace ferry {

// Cloud Scheduler v1 over REST, as `gcloud scheduler jobs` calls it, on Ferry's schedules:
//   POST   /v1/projects/{p}/locations/{r}/jobs                      create (Pub/Sub targets)
//   GET    /v1/projects/{p}/locations/{r}/jobs                      list
//   GET    /v1/projects/{p}/locations/{r}/jobs/{j}                  get
//   PATCH  /v1/projects/{p}/locations/{r}/jobs/{j}?updateMask=...   update
//   DELETE /v1/projects/{p}/locations/{r}/jobs/{j}
//   POST   .../jobs/{j}:run | :pause | :resume
// Jobs made here are the API's: a deploy file neither changes nor deletes them, and this API does not change or
// delete a deploy file's (it runs, pauses and resumes both). Errors are google.rpc.Status bodies.
class SchedulerApi {
 public:
  explicit SchedulerApi(Scheduler& scheduler) : scheduler_(scheduler) {}
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);

 private:
  Scheduler& scheduler_;
};

}  // namespace ferry
