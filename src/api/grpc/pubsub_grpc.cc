// The gRPC API runs on gRPC's synchronous server: a unary call or a StreamingPull holds one of its threads while
// it waits, which is the simple model and enough for the few streams a client opens (the Node.js client opens 5
// per subscriber).
#include "api/grpc/pubsub_grpc.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>

#include "api/grpc/streaming_pull.h"
#include "common/status_macros.h"
#include "google/pubsub/v1/pubsub.grpc.pb.h"
#include "google/rpc/status.pb.h"

namespace ferry {
namespace {

namespace pb = google::pubsub::v1;
using google::protobuf::Empty;

// ---- conversions between the protos and Ferry's model ----

grpc::Status ToGrpc(Status const& st) {
  return st.ok() ? grpc::Status::OK : grpc::Status(static_cast<grpc::StatusCode>(st.code()), st.message());
}

void SetDuration(int64_t ms, google::protobuf::Duration* out) {
  out->set_seconds(ms / 1000);
  out->set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
}
// Clamped to protobuf's own range (about 10,000 years), so a hostile value cannot overflow; Normalize then
// refuses what is out of Pub/Sub's bounds.
int64_t ClampedMillis(int64_t seconds, int32_t nanos) {
  constexpr int64_t kMaxSeconds = 315'576'000'000;
  seconds = std::clamp<int64_t>(seconds, -kMaxSeconds, kMaxSeconds);
  return seconds * 1000 + nanos / 1'000'000;
}
int64_t Millis(google::protobuf::Duration const& d) { return ClampedMillis(d.seconds(), d.nanos()); }
int64_t Millis(google::protobuf::Timestamp const& t) { return ClampedMillis(t.seconds(), t.nanos()); }

template <typename Map>
Attributes ToAttributes(Map const& map) {
  return Attributes(map.begin(), map.end());
}

void ToProto(Topic const& t, pb::Topic* out) {
  out->set_name(t.name);
  out->mutable_labels()->insert(t.labels.begin(), t.labels.end());
  if (t.message_retention_ms) SetDuration(*t.message_retention_ms, out->mutable_message_retention_duration());
}

Topic FromProto(pb::Topic const& in) {
  Topic t;
  t.name = in.name();
  t.labels = ToAttributes(in.labels());
  if (in.has_message_retention_duration()) t.message_retention_ms = Millis(in.message_retention_duration());
  return t;
}

void ToProto(PushConfig const& c, pb::PushConfig* out) {
  out->set_push_endpoint(c.push_endpoint);
  out->mutable_attributes()->insert(c.attributes.begin(), c.attributes.end());
  if (c.no_wrapper) out->mutable_no_wrapper()->set_write_metadata(c.write_metadata);
}

PushConfig FromProto(pb::PushConfig const& in) {
  PushConfig c;
  c.push_endpoint = in.push_endpoint();
  c.attributes = ToAttributes(in.attributes());
  c.no_wrapper = in.has_no_wrapper();
  c.write_metadata = in.no_wrapper().write_metadata();
  return c;
}

void ToProto(Subscription const& s, pb::Subscription* out) {
  out->set_name(s.name);
  out->set_topic(s.topic);
  if (!s.push_config.push_endpoint.empty()) ToProto(s.push_config, out->mutable_push_config());
  out->set_ack_deadline_seconds(s.ack_deadline_seconds);
  out->set_retain_acked_messages(s.retain_acked_messages);
  SetDuration(s.message_retention_ms, out->mutable_message_retention_duration());
  out->mutable_labels()->insert(s.labels.begin(), s.labels.end());
  out->set_enable_message_ordering(s.enable_message_ordering);
  if (s.expiration_ttl_ms) {
    auto* policy = out->mutable_expiration_policy();
    if (*s.expiration_ttl_ms > 0) SetDuration(*s.expiration_ttl_ms, policy->mutable_ttl());
  }
  out->set_filter(s.filter);
  if (s.dead_letter_policy) {
    out->mutable_dead_letter_policy()->set_dead_letter_topic(s.dead_letter_policy->dead_letter_topic);
    out->mutable_dead_letter_policy()->set_max_delivery_attempts(s.dead_letter_policy->max_delivery_attempts);
  }
  if (s.retry_policy) {
    SetDuration(s.retry_policy->minimum_backoff_ms, out->mutable_retry_policy()->mutable_minimum_backoff());
    SetDuration(s.retry_policy->maximum_backoff_ms, out->mutable_retry_policy()->mutable_maximum_backoff());
  }
  out->set_detached(s.detached);
  out->set_enable_exactly_once_delivery(s.enable_exactly_once_delivery);
  out->set_state(pb::Subscription::ACTIVE);
}

Subscription FromProto(pb::Subscription const& in) {
  Subscription s;
  s.name = in.name();
  s.topic = in.topic();
  if (in.has_push_config()) s.push_config = FromProto(in.push_config());
  s.ack_deadline_seconds = in.ack_deadline_seconds();  // 0: the default, filled by NormalizeSubscription
  s.retain_acked_messages = in.retain_acked_messages();
  if (in.has_message_retention_duration()) s.message_retention_ms = Millis(in.message_retention_duration());
  s.labels = ToAttributes(in.labels());
  s.enable_message_ordering = in.enable_message_ordering();
  if (in.has_expiration_policy()) {
    s.expiration_ttl_ms = in.expiration_policy().has_ttl() ? Millis(in.expiration_policy().ttl()) : 0;
  }
  s.filter = in.filter();
  if (in.has_dead_letter_policy()) {
    DeadLetterPolicy policy;
    policy.dead_letter_topic = in.dead_letter_policy().dead_letter_topic();
    if (in.dead_letter_policy().max_delivery_attempts() != 0) {
      policy.max_delivery_attempts = in.dead_letter_policy().max_delivery_attempts();
    }
    s.dead_letter_policy = policy;
  }
  if (in.has_retry_policy()) {
    RetryPolicy policy;
    if (in.retry_policy().has_minimum_backoff()) policy.minimum_backoff_ms = Millis(in.retry_policy().minimum_backoff());
    if (in.retry_policy().has_maximum_backoff()) policy.maximum_backoff_ms = Millis(in.retry_policy().maximum_backoff());
    s.retry_policy = policy;
  }
  s.detached = in.detached();
  s.enable_exactly_once_delivery = in.enable_exactly_once_delivery();
  return s;
}

void ToProto(Snapshot const& s, pb::Snapshot* out) {
  out->set_name(s.name);
  out->set_topic(s.topic);
  SetTimestamp(s.expire_time_ms, out->mutable_expire_time());
  out->mutable_labels()->insert(s.labels.begin(), s.labels.end());
}

std::vector<std::string> Paths(google::protobuf::FieldMask const& mask) {
  return {mask.paths().begin(), mask.paths().end()};
}

std::vector<std::string> Strings(google::protobuf::RepeatedPtrField<std::string> const& list) {
  return {list.begin(), list.end()};
}

// Exactly-once acknowledgement failures as Pub/Sub reports them: the RPC fails, and an ErrorInfo in the status
// details maps each failed ack id to its reason, which client libraries read to settle each message's ack.
grpc::Status AckIdFailure(Status const& st, std::vector<std::string> const& invalid_ack_ids) {
  google::rpc::ErrorInfo info;
  info.set_reason("EXACTLY_ONCE_ACKID_FAILURE");
  info.set_domain("pubsub.googleapis.com");
  for (auto const& id : invalid_ack_ids) (*info.mutable_metadata())[id] = "PERMANENT_FAILURE_INVALID_ACK_ID";
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(st.code()));
  details.set_message(st.message());
  details.add_details()->PackFrom(info);
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), st.message(), details.SerializeAsString());
}

// ---- the services ----

// A StreamingPull's stream as its session sees it.
class GrpcPullStream final : public PullStream {
 public:
  GrpcPullStream(grpc::ServerContext* ctx,
                 grpc::ServerReaderWriter<pb::StreamingPullResponse, pb::StreamingPullRequest>* stream)
      : ctx_(ctx), stream_(stream) {}
  bool Read(pb::StreamingPullRequest* request) override { return stream_->Read(request); }
  bool Write(pb::StreamingPullResponse const& response) override { return stream_->Write(response); }
  bool Cancelled() override { return ctx_->IsCancelled(); }
  void Cancel() override { ctx_->TryCancel(); }

 private:
  grpc::ServerContext* ctx_;
  grpc::ServerReaderWriter<pb::StreamingPullResponse, pb::StreamingPullRequest>* stream_;
};

// The role check of every call: the bearer token in the "authorization" metadata, as Google's client libraries
// send it. nullopt when the call may go on.
class Authorizer {
 public:
  explicit Authorizer(TokenAuthenticator const& tokens) : tokens_(tokens) {}

  std::optional<grpc::Status> Authorize(grpc::ServerContext* ctx, Role role) const {
    if (!tokens_.enabled()) return std::nullopt;
    std::string_view authorization;
    auto const& metadata = ctx->client_metadata();
    if (auto it = metadata.find("authorization"); it != metadata.end()) {
      authorization = std::string_view(it->second.data(), it->second.size());
    }
    Status st = tokens_.Check(authorization, role);
    if (st.ok()) return std::nullopt;
    return ToGrpc(st);
  }

 private:
  TokenAuthenticator const& tokens_;
};

class PublisherService final : public pb::Publisher::Service, Authorizer {
 public:
  PublisherService(Broker& broker, TokenAuthenticator const& tokens) : Authorizer(tokens), broker_(broker) {}

  grpc::Status CreateTopic(grpc::ServerContext* ctx, pb::Topic const* req, pb::Topic* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    auto topic = broker_.CreateTopic(FromProto(*req));
    if (topic.ok()) ToProto(*topic, res);
    return ToGrpc(topic.status());
  }

  grpc::Status UpdateTopic(grpc::ServerContext* ctx, pb::UpdateTopicRequest const* req, pb::Topic* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    auto topic = broker_.UpdateTopic(FromProto(req->topic()), Paths(req->update_mask()));
    if (topic.ok()) ToProto(*topic, res);
    return ToGrpc(topic.status());
  }

  grpc::Status Publish(grpc::ServerContext* ctx, pb::PublishRequest const* req, pb::PublishResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kPublisher)) return *denied;
    if (req->ByteSizeLong() > kMaxPublishRequestBytes) {
      return ToGrpc(InvalidArgumentError("The request size exceeds the limit of 10 MB"));
    }
    std::vector<PubsubMessage> messages;
    messages.reserve(static_cast<std::size_t>(req->messages_size()));
    for (auto const& m : req->messages()) {
      PubsubMessage message;
      message.data = m.data();
      for (auto const& entry : m.attributes()) message.attributes[entry.key()] = entry.value();  // the last wins
      message.ordering_key = m.ordering_key();
      messages.push_back(std::move(message));
    }
    auto ids = broker_.Publish(req->topic(), std::move(messages));
    if (!ids.ok()) return ToGrpc(ids.status());
    for (auto& id : *ids) res->add_message_ids(std::move(id));
    return grpc::Status::OK;
  }

  grpc::Status GetTopic(grpc::ServerContext* ctx, pb::GetTopicRequest const* req, pb::Topic* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto topic = broker_.GetTopic(req->topic());
    if (topic.ok()) ToProto(*topic, res);
    return ToGrpc(topic.status());
  }

  grpc::Status ListTopics(grpc::ServerContext* ctx, pb::ListTopicsRequest const* req,
                          pb::ListTopicsResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto project = ParseProject(req->project());
    if (!project.ok()) return ToGrpc(project.status());
    auto page = broker_.ListTopics(*project, req->page_size(), req->page_token());
    if (!page.ok()) return ToGrpc(page.status());
    for (auto const& t : page->items) ToProto(t, res->add_topics());
    res->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status ListTopicSubscriptions(grpc::ServerContext* ctx, pb::ListTopicSubscriptionsRequest const* req,
                                      pb::ListTopicSubscriptionsResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto page = broker_.ListTopicSubscriptions(req->topic(), req->page_size(), req->page_token());
    if (!page.ok()) return ToGrpc(page.status());
    for (auto const& name : page->items) res->add_subscriptions(name);
    res->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status ListTopicSnapshots(grpc::ServerContext* ctx, pb::ListTopicSnapshotsRequest const* req,
                                  pb::ListTopicSnapshotsResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto page = broker_.ListTopicSnapshots(req->topic(), req->page_size(), req->page_token());
    if (!page.ok()) return ToGrpc(page.status());
    for (auto const& name : page->items) res->add_snapshots(name);
    res->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status DeleteTopic(grpc::ServerContext* ctx, pb::DeleteTopicRequest const* req, Empty*) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    return ToGrpc(broker_.DeleteTopic(req->topic()));
  }

  grpc::Status DetachSubscription(grpc::ServerContext* ctx, pb::DetachSubscriptionRequest const*,
                                  pb::DetachSubscriptionResponse*) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    return ToGrpc(UnimplementedError("DetachSubscription is not supported by Ferry"));
  }

  // "projects/{p}" -> "{p}".
  static StatusOr<std::string> ParseProject(std::string const& name) {
    constexpr std::string_view kPrefix = "projects/";
    if (name.rfind(kPrefix, 0) != 0 || name.size() == kPrefix.size() ||
        name.find('/', kPrefix.size()) != std::string::npos) {
      return InvalidArgumentError("Invalid project name: \"" + name + "\"");
    }
    return name.substr(kPrefix.size());
  }

 private:
  Broker& broker_;
};

class SubscriberService final : public pb::Subscriber::Service, Authorizer {
 public:
  SubscriberService(Broker& broker, TokenAuthenticator const& tokens) : Authorizer(tokens), broker_(broker) {}

  void Stop() { stopping_ = true; }

  grpc::Status CreateSubscription(grpc::ServerContext* ctx, pb::Subscription const* req,
                                  pb::Subscription* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    auto sub = broker_.CreateSubscription(FromProto(*req));
    if (sub.ok()) ToProto(*sub, res);
    return ToGrpc(sub.status());
  }

  grpc::Status GetSubscription(grpc::ServerContext* ctx, pb::GetSubscriptionRequest const* req,
                               pb::Subscription* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto sub = broker_.GetSubscription(req->subscription());
    if (sub.ok()) ToProto(*sub, res);
    return ToGrpc(sub.status());
  }

  grpc::Status UpdateSubscription(grpc::ServerContext* ctx, pb::UpdateSubscriptionRequest const* req,
                                  pb::Subscription* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    auto sub = broker_.UpdateSubscription(FromProto(req->subscription()), Paths(req->update_mask()));
    if (sub.ok()) ToProto(*sub, res);
    return ToGrpc(sub.status());
  }

  grpc::Status ListSubscriptions(grpc::ServerContext* ctx, pb::ListSubscriptionsRequest const* req,
                                 pb::ListSubscriptionsResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto project = PublisherService::ParseProject(req->project());
    if (!project.ok()) return ToGrpc(project.status());
    auto page = broker_.ListSubscriptions(*project, req->page_size(), req->page_token());
    if (!page.ok()) return ToGrpc(page.status());
    for (auto const& s : page->items) ToProto(s, res->add_subscriptions());
    res->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status DeleteSubscription(grpc::ServerContext* ctx, pb::DeleteSubscriptionRequest const* req,
                                  Empty*) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    return ToGrpc(broker_.DeleteSubscription(req->subscription()));
  }

  grpc::Status ModifyAckDeadline(grpc::ServerContext* ctx, pb::ModifyAckDeadlineRequest const* req, Empty*) override {
    if (auto denied = Authorize(ctx, Role::kSubscriber)) return *denied;
    auto ids = Strings(req->ack_ids());
    std::vector<std::string> invalid;
    Status st = broker_.ModifyAckDeadline(req->subscription(), ids, req->ack_deadline_seconds(), &invalid);
    if (req->ack_deadline_seconds() == 0) {
      leases_.Settle(ids);
    } else {
      leases_.Extend(ids, req->ack_deadline_seconds());
    }
    if (!invalid.empty()) return AckIdFailure(st, invalid);
    return ToGrpc(st);
  }

  grpc::Status Acknowledge(grpc::ServerContext* ctx, pb::AcknowledgeRequest const* req, Empty*) override {
    if (auto denied = Authorize(ctx, Role::kSubscriber)) return *denied;
    auto ids = Strings(req->ack_ids());
    std::vector<std::string> invalid;
    Status st = broker_.Acknowledge(req->subscription(), ids, &invalid);
    leases_.Settle(ids);
    if (!invalid.empty()) return AckIdFailure(st, invalid);
    return ToGrpc(st);
  }

  grpc::Status Pull(grpc::ServerContext* ctx, pb::PullRequest const* req, pb::PullResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kSubscriber)) return *denied;
    auto pulled = broker_.Pull(req->subscription(), req->max_messages(), req->return_immediately());
    if (!pulled.ok()) return ToGrpc(pulled.status());
    for (auto const& r : *pulled) ToProto(r, res->add_received_messages());
    return grpc::Status::OK;
  }

  grpc::Status StreamingPull(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::StreamingPullResponse, pb::StreamingPullRequest>* stream) override {
    if (auto denied = Authorize(ctx, Role::kSubscriber)) return *denied;
    pb::StreamingPullRequest first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    GrpcPullStream pull_stream(ctx, stream);
    return ToGrpc(StreamingPullSession(broker_, broker_.clock(), leases_, stopping_).Run(pull_stream, first));
  }

  grpc::Status ModifyPushConfig(grpc::ServerContext* ctx, pb::ModifyPushConfigRequest const* req, Empty*) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    Subscription patch;
    patch.name = req->subscription();
    if (req->has_push_config()) patch.push_config = FromProto(req->push_config());
    return ToGrpc(broker_.UpdateSubscription(patch, {"pushConfig"}).status());
  }

  grpc::Status GetSnapshot(grpc::ServerContext* ctx, pb::GetSnapshotRequest const* req, pb::Snapshot* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto snapshot = broker_.GetSnapshot(req->snapshot());
    if (snapshot.ok()) ToProto(*snapshot, res);
    return ToGrpc(snapshot.status());
  }

  grpc::Status ListSnapshots(grpc::ServerContext* ctx, pb::ListSnapshotsRequest const* req,
                             pb::ListSnapshotsResponse* res) override {
    if (auto denied = Authorize(ctx, Role::kViewer)) return *denied;
    auto project = PublisherService::ParseProject(req->project());
    if (!project.ok()) return ToGrpc(project.status());
    auto page = broker_.ListSnapshots(*project, req->page_size(), req->page_token());
    if (!page.ok()) return ToGrpc(page.status());
    for (auto const& s : page->items) ToProto(s, res->add_snapshots());
    res->set_next_page_token(page->next_page_token);
    return grpc::Status::OK;
  }

  grpc::Status CreateSnapshot(grpc::ServerContext* ctx, pb::CreateSnapshotRequest const* req,
                              pb::Snapshot* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    auto snapshot = broker_.CreateSnapshot(req->name(), req->subscription(), ToAttributes(req->labels()));
    if (snapshot.ok()) ToProto(*snapshot, res);
    return ToGrpc(snapshot.status());
  }

  grpc::Status UpdateSnapshot(grpc::ServerContext* ctx, pb::UpdateSnapshotRequest const* req,
                              pb::Snapshot* res) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    Snapshot patch;
    patch.name = req->snapshot().name();
    patch.labels = ToAttributes(req->snapshot().labels());
    if (req->snapshot().has_expire_time()) patch.expire_time_ms = Millis(req->snapshot().expire_time());
    auto snapshot = broker_.UpdateSnapshot(patch, Paths(req->update_mask()));
    if (snapshot.ok()) ToProto(*snapshot, res);
    return ToGrpc(snapshot.status());
  }

  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx, pb::DeleteSnapshotRequest const* req, Empty*) override {
    if (auto denied = Authorize(ctx, Role::kAdmin)) return *denied;
    return ToGrpc(broker_.DeleteSnapshot(req->snapshot()));
  }

  grpc::Status Seek(grpc::ServerContext* ctx, pb::SeekRequest const* req, pb::SeekResponse*) override {
    if (auto denied = Authorize(ctx, Role::kSubscriber)) return *denied;
    switch (req->target_case()) {
      case pb::SeekRequest::kTime:
        return ToGrpc(broker_.SeekToTime(req->subscription(), Millis(req->time())));
      case pb::SeekRequest::kSnapshot:
        return ToGrpc(broker_.SeekToSnapshot(req->subscription(), req->snapshot()));
      default:
        return ToGrpc(InvalidArgumentError("A seek needs a time or a snapshot"));
    }
  }

 private:
  Broker& broker_;
  LeaseRegistry leases_{broker_.clock()};
  std::atomic<bool> stopping_{false};
};

class GrpcServer final : public PubsubGrpcServer {
 public:
  static constexpr int kMaxThreads = 256;

  GrpcServer(Broker& broker, TokenAuthenticator const& tokens) : publisher_(broker, tokens), subscriber_(broker, tokens) {}

  Status Build() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&publisher_);
    builder.RegisterService(&subscriber_);
    // A publish may carry 10 MB of data; the default limit is 4 MB.
    builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxPublishRequestBytes) + (1 << 20));
    builder.SetMaxSendMessageSize(64 << 20);
    // Bounded: the synchronous server holds a thread per call in progress (a StreamingPull holds one for its
    // life), so at most kMaxThreads calls run at once and a further one is RESOURCE_EXHAUSTED, instead of a
    // thread per caller without end. A connection may open at most 100 streams.
    grpc::ResourceQuota quota("ferry-grpc");
    quota.SetMaxThreads(kMaxThreads);
    builder.SetResourceQuota(quota);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100);
    // Connections handed over from the HTTP server leave its connection count; an idle one (no call for 5
    // minutes) is closed (GOAWAY; clients reconnect on their next call), so idle connections cannot pile up.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
    // Client libraries keep idle channels alive with pings; refusing them would close their streams.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    server_ = builder.BuildAndStart();
    if (!server_) return InternalError("cannot start the gRPC server");
    return OkStatus();
  }

  void AdoptConnection(int fd) override {
    std::lock_guard lock(mu_);
    if (stopped_) {
      ::close(fd);
      return;
    }
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    grpc::AddInsecureChannelFromFd(server_.get(), fd);
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    subscriber_.Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  ~GrpcServer() override { Stop(); }

 private:
  PublisherService publisher_;
  SubscriberService subscriber_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  bool stopped_ = false;  // GUARDED_BY(mu_): later connections are closed, not adopted
};

// Unary methods by name, each parsing its request from bytes, as gRPC does before it calls the service.
class UnaryMethods final : public PubsubGrpcMethods {
 public:
  explicit UnaryMethods(Broker& broker) : publisher_(broker, no_tokens_), subscriber_(broker, no_tokens_) {}

  int CallUnary(std::string_view method, std::string_view request_bytes) override {
    using P = PublisherService;
    using S = SubscriberService;
    if (method == "CreateTopic") return Call<pb::Topic, pb::Topic>(publisher_, &P::CreateTopic, request_bytes);
    if (method == "UpdateTopic") return Call<pb::UpdateTopicRequest, pb::Topic>(publisher_, &P::UpdateTopic, request_bytes);
    if (method == "Publish") return Call<pb::PublishRequest, pb::PublishResponse>(publisher_, &P::Publish, request_bytes);
    if (method == "GetTopic") return Call<pb::GetTopicRequest, pb::Topic>(publisher_, &P::GetTopic, request_bytes);
    if (method == "ListTopics") {
      return Call<pb::ListTopicsRequest, pb::ListTopicsResponse>(publisher_, &P::ListTopics, request_bytes);
    }
    if (method == "ListTopicSubscriptions") {
      return Call<pb::ListTopicSubscriptionsRequest, pb::ListTopicSubscriptionsResponse>(
          publisher_, &P::ListTopicSubscriptions, request_bytes);
    }
    if (method == "ListTopicSnapshots") {
      return Call<pb::ListTopicSnapshotsRequest, pb::ListTopicSnapshotsResponse>(publisher_, &P::ListTopicSnapshots,
                                                                                 request_bytes);
    }
    if (method == "DeleteTopic") return Call<pb::DeleteTopicRequest, Empty>(publisher_, &P::DeleteTopic, request_bytes);
    if (method == "DetachSubscription") {
      return Call<pb::DetachSubscriptionRequest, pb::DetachSubscriptionResponse>(publisher_, &P::DetachSubscription,
                                                                                 request_bytes);
    }
    if (method == "CreateSubscription") {
      return Call<pb::Subscription, pb::Subscription>(subscriber_, &S::CreateSubscription, request_bytes);
    }
    if (method == "GetSubscription") {
      return Call<pb::GetSubscriptionRequest, pb::Subscription>(subscriber_, &S::GetSubscription, request_bytes);
    }
    if (method == "UpdateSubscription") {
      return Call<pb::UpdateSubscriptionRequest, pb::Subscription>(subscriber_, &S::UpdateSubscription, request_bytes);
    }
    if (method == "ListSubscriptions") {
      return Call<pb::ListSubscriptionsRequest, pb::ListSubscriptionsResponse>(subscriber_, &S::ListSubscriptions,
                                                                               request_bytes);
    }
    if (method == "DeleteSubscription") {
      return Call<pb::DeleteSubscriptionRequest, Empty>(subscriber_, &S::DeleteSubscription, request_bytes);
    }
    if (method == "ModifyAckDeadline") {
      return Call<pb::ModifyAckDeadlineRequest, Empty>(subscriber_, &S::ModifyAckDeadline, request_bytes);
    }
    if (method == "Acknowledge") return Call<pb::AcknowledgeRequest, Empty>(subscriber_, &S::Acknowledge, request_bytes);
    if (method == "Pull") return Call<pb::PullRequest, pb::PullResponse>(subscriber_, &S::Pull, request_bytes);
    if (method == "ModifyPushConfig") {
      return Call<pb::ModifyPushConfigRequest, Empty>(subscriber_, &S::ModifyPushConfig, request_bytes);
    }
    if (method == "GetSnapshot") return Call<pb::GetSnapshotRequest, pb::Snapshot>(subscriber_, &S::GetSnapshot, request_bytes);
    if (method == "ListSnapshots") {
      return Call<pb::ListSnapshotsRequest, pb::ListSnapshotsResponse>(subscriber_, &S::ListSnapshots, request_bytes);
    }
    if (method == "CreateSnapshot") {
      return Call<pb::CreateSnapshotRequest, pb::Snapshot>(subscriber_, &S::CreateSnapshot, request_bytes);
    }
    if (method == "UpdateSnapshot") {
      return Call<pb::UpdateSnapshotRequest, pb::Snapshot>(subscriber_, &S::UpdateSnapshot, request_bytes);
    }
    if (method == "DeleteSnapshot") {
      return Call<pb::DeleteSnapshotRequest, Empty>(subscriber_, &S::DeleteSnapshot, request_bytes);
    }
    if (method == "Seek") return Call<pb::SeekRequest, pb::SeekResponse>(subscriber_, &S::Seek, request_bytes);
    return -1;
  }

 private:
  template <class Request, class Response, class Service>
  static int Call(Service& service, grpc::Status (Service::*method)(grpc::ServerContext*, Request const*, Response*),
                  std::string_view bytes) {
    Request request;
    if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return -1;
    Response response;
    grpc::ServerContext ctx;
    return static_cast<int>((service.*method)(&ctx, &request, &response).error_code());
  }

  TokenAuthenticator no_tokens_{{}};
  PublisherService publisher_;
  SubscriberService subscriber_;
};

}  // namespace

StatusOr<std::unique_ptr<PubsubGrpcServer>> PubsubGrpcServer::Start(Broker& broker, TokenAuthenticator const& tokens) {
  auto server = std::make_unique<GrpcServer>(broker, tokens);
  FERRY_RETURN_IF_ERROR(server->Build());
  return std::unique_ptr<PubsubGrpcServer>(std::move(server));
}

std::unique_ptr<PubsubGrpcMethods> PubsubGrpcMethods::Create(Broker& broker) {
  return std::make_unique<UnaryMethods>(broker);
}

}  // namespace ferry
