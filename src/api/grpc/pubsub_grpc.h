#pragma once

#include <memory>
#include <string_view>

#include "api/auth/tokens.h"
#include "broker/broker.h"
#include "ferry/status.h"

namespace ferry {

// Pub/Sub gRPC v1 (google.pubsub.v1 Publisher and Subscriber, StreamingPull included) over the Broker: the
// surface Google's client libraries speak when PUBSUB_EMULATOR_HOST points at Ferry. It listens on no port of its
// own: the HTTP server hands it every connection that opens with the HTTP/2 preface, so gRPC and REST share one
// host:port, as Google's emulator does. gRPC headers stay inside the .cc file.
class PubsubGrpcServer {
 public:
  // Every call needs a bearer token ("authorization" metadata) with the role Google's Pub/Sub roles would need,
  // when `tokens` is enabled. `tokens` must outlive the server.
  static StatusOr<std::unique_ptr<PubsubGrpcServer>> Start(Broker& broker, TokenAuthenticator const& tokens);
  virtual ~PubsubGrpcServer() = default;

  // Takes ownership of a connected socket whose peer speaks HTTP/2.
  virtual void AdoptConnection(int fd) = 0;
  // Ends open streams and stops serving. Call after Broker::Shutdown, so no handler waits in a pull.
  virtual void Stop() = 0;
};

// The unary methods of the service, called on serialized requests as the server calls them once a call has
// arrived, with no network and no token check: what the gRPC fuzz target drives.
class PubsubGrpcMethods {
 public:
  static std::unique_ptr<PubsubGrpcMethods> Create(Broker& broker);
  virtual ~PubsubGrpcMethods() = default;
  // `method` is the short name ("Publish"). The call's gRPC status code, or -1 for an unknown method or bytes
  // that are not its request message.
  virtual int CallUnary(std::string_view method, std::string_view request_bytes) = 0;
};

}  // namespace ferry
