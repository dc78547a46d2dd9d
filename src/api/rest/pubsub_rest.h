#pragma once

#include "api/http_server.h"
#include "broker/broker.h"

namespace ferry {

// Pub/Sub REST v1 (https://cloud.google.com/pubsub/docs/reference/rest), the surface `gcloud pubsub` speaks,
// plus GET /metrics and GET /healthz. Stateless over the Broker; thread-safe.
class PubsubRestApi {
 public:
  explicit PubsubRestApi(Broker& broker) : broker_(broker) {}
  HttpResponse Handle(HttpRequest const& request);

 private:
  Broker& broker_;
};

}  // namespace ferry
