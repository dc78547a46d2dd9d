#pragma once

#include <memory>

#include "broker/broker.h"
#include "ferry/status.h"

namespace ferry {

// Pub/Sub gRPC v1 (google.pubsub.v1 Publisher and Subscriber, StreamingPull included) over the Broker: the
// surface Google's client libraries speak when PUBSUB_EMULATOR_HOST points at Ferry. It listens on no port of its
// own: the HTTP server hands it every connection that opens with the HTTP/2 preface, so gRPC and REST share one
// host:port, as Google's emulator does. gRPC headers stay inside the .cc file.
class PubsubGrpcServer {
 public:
  static StatusOr<std::unique_ptr<PubsubGrpcServer>> Start(Broker& broker);
  virtual ~PubsubGrpcServer() = default;

  // Takes ownership of a connected socket whose peer speaks HTTP/2.
  virtual void AdoptConnection(int fd) = 0;
  // Ends open streams and stops serving. Call after Broker::Shutdown, so no handler waits in a pull.
  virtual void Stop() = 0;
};

}  // namespace ferry
