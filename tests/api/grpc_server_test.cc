// The gRPC services over a socket pair: what the Node.js client cannot show from outside, the server's own flow
// control and the shape of exactly-once ack errors.
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/grpc/pubsub_grpc.h"
#include "broker/broker.h"
#include "common/clock.h"
#include "google/pubsub/v1/pubsub.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "store/ack_id.h"
#include "store/store.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

namespace pb = google::pubsub::v1;
using ::ferry::testing::IsOk;

constexpr char kTopic[] = "projects/p/topics/orders";
constexpr char kSub[] = "projects/p/subscriptions/orders-worker";

// Collects what a StreamingPull answers, on a reader thread.
class StreamReader {
 public:
  explicit StreamReader(grpc::ClientReaderWriter<pb::StreamingPullRequest, pb::StreamingPullResponse>* stream)
      : thread_([this, stream] {
          pb::StreamingPullResponse response;
          while (stream->Read(&response)) {
            std::lock_guard lock(mu_);
            for (auto const& m : response.received_messages()) ack_ids_.push_back(m.ack_id());
            cv_.notify_all();
          }
        }) {}
  ~StreamReader() { thread_.join(); }

  // The ack ids received once `n` have arrived (or what arrived within 5 s).
  std::vector<std::string> WaitFor(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return ack_ids_.size() >= n; });
    return ack_ids_;
  }
  std::size_t Count() {
    std::lock_guard lock(mu_);
    return ack_ids_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ack_ids_;
  std::thread thread_;
};

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = MakeSqliteStore({.data_dir = dir_.path(), .sync = false});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    broker_ = std::make_unique<Broker>(*store_, clock_);
    tokens_ = std::make_unique<TokenAuthenticator>(grants_);
    auto server = PubsubGrpcServer::Start(*broker_, *tokens_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    server_->AdoptConnection(fds[0]);
    auto channel = grpc::CreateInsecureChannelFromFd("ferry", fds[1]);
    publisher_ = pb::Publisher::NewStub(channel);
    subscriber_ = pb::Subscriber::NewStub(channel);
  }

  void TearDown() override {
    if (broker_) broker_->Shutdown();
    if (server_) server_->Stop();
  }

  void CreateTopicAndSub(bool exactly_once = false) {
    grpc::ClientContext c1, c2;
    pb::Topic topic;
    topic.set_name(kTopic);
    pb::Topic created_topic;
    ASSERT_TRUE(publisher_->CreateTopic(&c1, topic, &created_topic).ok());
    pb::Subscription sub;
    sub.set_name(kSub);
    sub.set_topic(kTopic);
    sub.set_enable_exactly_once_delivery(exactly_once);
    pb::Subscription created_sub;
    ASSERT_TRUE(subscriber_->CreateSubscription(&c2, sub, &created_sub).ok());
  }

  void Publish(int n) {
    grpc::ClientContext ctx;
    pb::PublishRequest req;
    req.set_topic(kTopic);
    for (int i = 0; i < n; ++i) req.add_messages()->set_data(std::string(100, 'x'));
    pb::PublishResponse res;
    ASSERT_TRUE(publisher_->Publish(&ctx, req, &res).ok());
    ASSERT_EQ(res.message_ids_size(), n);
  }

  // How many messages no stream holds now: pulled, counted, and handed back at once. A stream at its flow-control
  // limit takes no more, so this tells what it took without waiting to see whether more comes.
  int CountNotOut() {
    grpc::ClientContext ctx;
    pb::PullRequest pull;
    pull.set_subscription(kSub);
    pull.set_max_messages(1000);
    pull.set_return_immediately(true);
    pb::PullResponse got;
    EXPECT_TRUE(subscriber_->Pull(&ctx, pull, &got).ok());
    if (got.received_messages_size() > 0) {
      grpc::ClientContext nack_ctx;
      pb::ModifyAckDeadlineRequest nack;
      nack.set_subscription(kSub);
      for (auto const& r : got.received_messages()) nack.add_ack_ids(r.ack_id());
      nack.set_ack_deadline_seconds(0);
      google::protobuf::Empty empty;
      EXPECT_TRUE(subscriber_->ModifyAckDeadline(&nack_ctx, nack, &empty).ok());
    }
    return got.received_messages_size();
  }

  // A StreamingPull on kSub with these flow-control limits, its first request sent.
  std::unique_ptr<grpc::ClientReaderWriter<pb::StreamingPullRequest, pb::StreamingPullResponse>> OpenStream(
      grpc::ClientContext& ctx, int64_t max_messages, int64_t max_bytes) {
    auto stream = subscriber_->StreamingPull(&ctx);
    pb::StreamingPullRequest first;
    first.set_subscription(kSub);
    first.set_stream_ack_deadline_seconds(60);
    first.set_max_outstanding_messages(max_messages);
    first.set_max_outstanding_bytes(max_bytes);
    EXPECT_TRUE(stream->Write(first));
    return stream;
  }

  ferry::testing::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
  std::vector<TokenGrant> grants_;  // a test that sets these before SetUp runs with auth on
  std::unique_ptr<TokenAuthenticator> tokens_;
  std::unique_ptr<PubsubGrpcServer> server_;
  std::unique_ptr<pb::Publisher::Stub> publisher_;
  std::unique_ptr<pb::Subscriber::Stub> subscriber_;
};

TEST_F(GrpcServerTest, StreamingPullKeepsToMaxOutstandingMessages) {
  CreateTopicAndSub();
  Publish(20);
  grpc::ClientContext ctx;
  auto stream = OpenStream(ctx, /*max_messages=*/5, /*max_bytes=*/0);
  StreamReader reader(stream.get());

  auto ids = reader.WaitFor(5);
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(CountNotOut(), 15) << "more than max_outstanding_messages went out";

  // Two acks on the stream make room for two more; three unary acks for three more.
  pb::StreamingPullRequest acks;
  acks.add_ack_ids(ids[0]);
  acks.add_ack_ids(ids[1]);
  ASSERT_TRUE(stream->Write(acks));
  EXPECT_EQ(reader.WaitFor(7).size(), 7u);
  grpc::ClientContext unary;
  pb::AcknowledgeRequest ack;
  ack.set_subscription(kSub);
  for (int i = 2; i < 5; ++i) ack.add_ack_ids(ids[static_cast<std::size_t>(i)]);
  google::protobuf::Empty empty;
  ASSERT_TRUE(subscriber_->Acknowledge(&unary, ack, &empty).ok());
  EXPECT_EQ(reader.WaitFor(10).size(), 10u);
  EXPECT_EQ(CountNotOut(), 10);
  EXPECT_EQ(reader.Count(), 10u);

  ctx.TryCancel();
}

TEST_F(GrpcServerTest, StreamingPullKeepsNearMaxOutstandingBytes) {
  CreateTopicAndSub();
  Publish(20);
  grpc::ClientContext ctx;
  auto stream = OpenStream(ctx, /*max_messages=*/0, /*max_bytes=*/250);  // 100-byte messages: the third crosses it
  StreamReader reader(stream.get());
  reader.WaitFor(3);
  EXPECT_EQ(CountNotOut(), 17);
  EXPECT_EQ(reader.Count(), 3u);
  ctx.TryCancel();
}

TEST_F(GrpcServerTest, ExactlyOnceAckFailureCarriesErrorInfoPerAckId) {
  CreateTopicAndSub(/*exactly_once=*/true);
  Publish(1);
  grpc::ClientContext pull_ctx;
  pb::PullRequest pull;
  pull.set_subscription(kSub);
  pull.set_max_messages(1);
  pb::PullResponse pulled;
  ASSERT_TRUE(subscriber_->Pull(&pull_ctx, pull, &pulled).ok());
  ASSERT_EQ(pulled.received_messages_size(), 1);
  std::string ack_id = pulled.received_messages(0).ack_id();

  google::protobuf::Empty empty;
  grpc::ClientContext nack_ctx;
  pb::ModifyAckDeadlineRequest nack;
  nack.set_subscription(kSub);
  nack.add_ack_ids(ack_id);
  nack.set_ack_deadline_seconds(0);
  ASSERT_TRUE(subscriber_->ModifyAckDeadline(&nack_ctx, nack, &empty).ok());

  grpc::ClientContext ack_ctx;
  pb::AcknowledgeRequest ack;
  ack.set_subscription(kSub);
  ack.add_ack_ids(ack_id);
  grpc::Status st = subscriber_->Acknowledge(&ack_ctx, ack, &empty);
  ASSERT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(st.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "EXACTLY_ONCE_ACKID_FAILURE");
  EXPECT_EQ(info.metadata().at(ack_id), "PERMANENT_FAILURE_INVALID_ACK_ID");
}

TEST_F(GrpcServerTest, ErrorsUseCanonicalCodes) {
  grpc::ClientContext ctx;
  pb::PublishRequest req;
  req.set_topic("projects/p/topics/missing");
  req.add_messages()->set_data("x");
  pb::PublishResponse res;
  EXPECT_EQ(publisher_->Publish(&ctx, req, &res).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext bad;
  pb::Topic topic;
  topic.set_name("projects/p/topics/x");  // too short an id
  pb::Topic out;
  EXPECT_EQ(publisher_->CreateTopic(&bad, topic, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcServerTest, TextThatIsNotUtf8IsInvalidArgument) {
  grpc::ClientContext c1;
  pb::Topic topic;
  topic.set_name("projects/p/topics/caf\xE9-topic");
  pb::Topic out;
  EXPECT_EQ(publisher_->CreateTopic(&c1, topic, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c2;
  topic.set_name("projects/\xFF/topics/abc");
  EXPECT_EQ(publisher_->CreateTopic(&c2, topic, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  CreateTopicAndSub();
  grpc::ClientContext c3;
  pb::PublishRequest req;
  req.set_topic(kTopic);
  auto* entry = req.add_messages()->add_attributes();
  entry->set_key("k");
  entry->set_value("caf\xE9");
  pb::PublishResponse res;
  EXPECT_EQ(publisher_->Publish(&c3, req, &res).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c4;
  req.mutable_messages(0)->set_ordering_key("\xC0\xAF");
  req.mutable_messages(0)->mutable_attributes(0)->set_value("fine");
  EXPECT_EQ(publisher_->Publish(&c4, req, &res).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcServerTest, MessagesLeasedForAStreamThatEndedGoBackUncounted) {
  CreateTopicAndSub();
  {
    // A stream that waits for messages, and a client that leaves while it waits: a publish right after lands in
    // the stream's pull, which finds the client gone.
    grpc::ClientContext ctx;
    auto stream = OpenStream(ctx, 10, 0);
    for (int i = 0; i < 5000 && broker_->WaitingPulls() == 0; ++i) {  // until the server waits in its pull
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_GT(broker_->WaitingPulls(), 0);
    stream->WritesDone();
    ctx.TryCancel();
    Publish(1);
    pb::StreamingPullResponse response;
    while (stream->Read(&response)) {
    }
    (void)stream->Finish();
  }
  // The message is there at once for the next subscriber, as its first delivery.
  grpc::ClientContext pull_ctx;
  pb::PullRequest pull;
  pull.set_subscription(kSub);
  pull.set_max_messages(10);
  pb::PullResponse got;
  ASSERT_TRUE(subscriber_->Pull(&pull_ctx, pull, &got).ok());
  ASSERT_EQ(got.received_messages_size(), 1);
  auto lease = store_->Lease(kSub, 10, ToUnixMillis(clock_.Now()));  // nothing else is out
  ASSERT_THAT(lease, IsOk());
  EXPECT_TRUE(lease->messages.empty());
  // The attempt is in the ack id: the first one.
  auto ref = DecodeAckId(got.received_messages(0).ack_id());
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->attempt, 1);
}

class GrpcAuthTest : public GrpcServerTest {
 protected:
  void SetUp() override {
    for (char const* entry : {"admin=grpc-admin-0123456789", "publisher=grpc-publisher-0123456789"}) {
      auto grant = ParseTokenGrant(entry);
      ASSERT_THAT(grant, IsOk());
      grants_.push_back(*grant);
    }
    GrpcServerTest::SetUp();
  }
};

TEST_F(GrpcAuthTest, CallsNeedABearerTokenWithTheirRole) {
  pb::Topic topic;
  topic.set_name(kTopic);
  pb::Topic out;
  grpc::ClientContext none;
  EXPECT_EQ(publisher_->CreateTopic(&none, topic, &out).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext publisher;
  publisher.AddMetadata("authorization", "Bearer grpc-publisher-0123456789");
  EXPECT_EQ(publisher_->CreateTopic(&publisher, topic, &out).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::ClientContext admin;
  admin.AddMetadata("authorization", "Bearer grpc-admin-0123456789");
  ASSERT_TRUE(publisher_->CreateTopic(&admin, topic, &out).ok());

  pb::PublishRequest req;
  req.set_topic(kTopic);
  req.add_messages()->set_data("x");
  pb::PublishResponse res;
  grpc::ClientContext wrong;
  wrong.AddMetadata("authorization", "Bearer not-the-token-0000000");
  EXPECT_EQ(publisher_->Publish(&wrong, req, &res).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ok;
  ok.AddMetadata("authorization", "Bearer grpc-publisher-0123456789");
  EXPECT_TRUE(publisher_->Publish(&ok, req, &res).ok());

  // A StreamingPull is refused before it streams anything.
  grpc::ClientContext stream_ctx;
  stream_ctx.AddMetadata("authorization", "Bearer grpc-publisher-0123456789");
  auto stream = subscriber_->StreamingPull(&stream_ctx);
  pb::StreamingPullRequest first;
  first.set_subscription(kSub);
  first.set_stream_ack_deadline_seconds(10);
  stream->Write(first);
  stream->WritesDone();
  pb::StreamingPullResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace ferry
