// gRPC requests as the service receives them: protobuf bytes parsed into a method's request, converted into the
// model and run on a real broker. The first byte picks the method. Never a crash, and never an INTERNAL or UNKNOWN
// status for a request that parsed: bad input is the caller's error (INVALID_ARGUMENT, NOT_FOUND, ...).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/grpc/pubsub_grpc.h"
#include "broker_fixture.h"

namespace {

constexpr std::string_view kMethods[] = {
    "CreateTopic",     "UpdateTopic",        "Publish",           "GetTopic",          "ListTopics",
    "ListTopicSubscriptions", "ListTopicSnapshots", "DeleteTopic", "DetachSubscription", "CreateSubscription",
    "GetSubscription", "UpdateSubscription", "ListSubscriptions", "DeleteSubscription", "ModifyAckDeadline",
    "Acknowledge",     "Pull",               "ModifyPushConfig",  "GetSnapshot",       "ListSnapshots",
    "CreateSnapshot",  "UpdateSnapshot",     "DeleteSnapshot",    "Seek"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, std::size_t size) {
  static auto* fixture = new ferry::fuzzing::BrokerFixture();
  if (size == 0) return 0;
  std::string_view method = kMethods[data[0] % std::size(kMethods)];
  auto methods = ferry::PubsubGrpcMethods::Create(fixture->Next());
  int code = methods->CallUnary(method, std::string_view(reinterpret_cast<char const*>(data + 1), size - 1));
  if (code == 2 /* UNKNOWN */ || code == 13 /* INTERNAL */) std::abort();
  return 0;
}
