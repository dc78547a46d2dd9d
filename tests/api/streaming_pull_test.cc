// A StreamingPull session on a real broker and SQLite store, with an in-memory stream and a fake clock: flow
// control, leases running out, a client that leaves mid-pull, exactly-once confirmations and bad requests, each
// stepped through without sleeping.
#include "api/grpc/streaming_pull.h"

#include <deque>
#include <future>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/fake_clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

namespace pb = google::pubsub::v1;
using ::ferry::testing::IsOk;
using ::ferry::testing::StatusIs;
using ::std::chrono::milliseconds;
using ::std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::SizeIs;

constexpr char kTopic[] = "projects/p/topics/jobs";
constexpr char kSub[] = "projects/p/subscriptions/jobs-sub";
constexpr char kDlt[] = "projects/p/topics/jobs-failed";

// The client's end and the session's end of one stream, in memory.
class MemoryStream : public PullStream {
 public:
  // The client's side.
  void Send(pb::StreamingPullRequest request) {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(request));
    cv_.notify_all();
  }
  void HalfClose() {
    std::lock_guard lock(mu_);
    half_closed_ = true;
    cv_.notify_all();
  }
  // The messages received so far, once there are at least `n` (waits up to 10 s of real time).
  std::vector<pb::ReceivedMessage> WaitForMessages(std::size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, seconds(10), [&] { return Messages().size() >= n; });
    return Messages();
  }
  std::vector<pb::StreamingPullResponse> WaitForConfirmations(std::size_t n) {
    std::unique_lock lock(mu_);
    auto confirmations = [&] {
      std::vector<pb::StreamingPullResponse> out;
      for (auto const& w : writes_) {
        if (w.has_acknowledge_confirmation() || w.has_modify_ack_deadline_confirmation()) out.push_back(w);
      }
      return out;
    };
    cv_.wait_for(lock, seconds(10), [&] { return confirmations().size() >= n; });
    return confirmations();
  }

  // The session's side.
  bool Read(pb::StreamingPullRequest* request) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !requests_.empty() || half_closed_ || cancelled_; });
    if (requests_.empty() || cancelled_) return false;
    *request = std::move(requests_.front());
    requests_.pop_front();
    return true;
  }
  bool Write(pb::StreamingPullResponse const& response) override {
    std::lock_guard lock(mu_);
    if (cancelled_) return false;
    writes_.push_back(response);
    cv_.notify_all();
    return true;
  }
  bool Cancelled() override {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  void Cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  std::vector<pb::ReceivedMessage> Messages() {  // REQUIRES(mu_)
    std::vector<pb::ReceivedMessage> out;
    for (auto const& w : writes_) out.insert(out.end(), w.received_messages().begin(), w.received_messages().end());
    return out;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pb::StreamingPullRequest> requests_;   // GUARDED_BY(mu_)
  std::vector<pb::StreamingPullResponse> writes_;   // GUARDED_BY(mu_)
  bool half_closed_ = false;                        // GUARDED_BY(mu_)
  bool cancelled_ = false;                          // GUARDED_BY(mu_)
};

class StreamingPullTest : public ::testing::Test {
 protected:
  StreamingPullTest() {
    auto store = MakeSqliteStore({.data_dir = dir_.path(), .sync = false});
    EXPECT_THAT(store, IsOk());
    store_ = *std::move(store);
    broker_ = std::make_unique<Broker>(*store_, clock_, BrokerOptions{.maintenance_interval = {}});
    EXPECT_THAT(broker_->CreateTopic({.name = kTopic}), IsOk());
    EXPECT_THAT(broker_->CreateTopic({.name = kDlt}), IsOk());
  }
  ~StreamingPullTest() override {
    stopping_ = true;
    for (auto& stream : streams_) stream.Cancel();  // ends the sessions' waits for room
    broker_->Shutdown();                            // and for messages
    for (auto& s : sessions_) s.wait();
  }

  // A stream that lives as long as the test, so no session outlives its stream.
  MemoryStream& NewStream() { return streams_.emplace_back(); }

  void CreateSub(bool exactly_once = false) {
    Subscription sub{.name = kSub, .topic = kTopic};
    sub.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = kDlt, .max_delivery_attempts = 5};
    sub.enable_exactly_once_delivery = exactly_once;
    ASSERT_THAT(broker_->CreateSubscription(sub), IsOk());
  }

  void Publish(int n) {
    std::vector<PubsubMessage> messages(n, PubsubMessage{.data = "m"});
    ASSERT_THAT(broker_->Publish(kTopic, messages), IsOk());
  }

  static pb::StreamingPullRequest First(int64_t max_messages = 0) {
    pb::StreamingPullRequest first;
    first.set_subscription(kSub);
    first.set_stream_ack_deadline_seconds(10);
    first.set_max_outstanding_messages(max_messages);
    return first;
  }

  // Runs a session on `stream` on a thread of its own.
  std::shared_future<Status> Open(MemoryStream& stream, pb::StreamingPullRequest const& first) {
    auto run = std::async(std::launch::async, [this, &stream, first] {
      return StreamingPullSession(*broker_, clock_, leases_, stopping_).Run(stream, first);
    }).share();
    sessions_.push_back(run);
    return run;
  }

  // Moves the clock a second at a time until `run` ends (at most a minute of the clock).
  bool EndsAsTheClockMoves(std::shared_future<Status> const& run) {
    for (int i = 0; i < 60 && run.wait_for(milliseconds(2)) != std::future_status::ready; ++i) {
      clock_.Advance(seconds(1));
    }
    return run.wait_for(seconds(5)) == std::future_status::ready;
  }

  // Waits until a session waits in its pull for messages (real time, briefly).
  bool WaitsInItsPull() {
    for (int i = 0; i < 5000 && broker_->WaitingPulls() == 0; ++i) std::this_thread::sleep_for(milliseconds(1));
    return broker_->WaitingPulls() > 0;
  }

  static pb::StreamingPullRequest Ack(std::vector<std::string> const& ids) {
    pb::StreamingPullRequest req;
    for (auto const& id : ids) req.add_ack_ids(id);
    return req;
  }

  ferry::testing::TempDir dir_;
  ferry::testing::FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
  LeaseRegistry leases_{clock_};
  std::atomic<bool> stopping_{false};
  std::deque<MemoryStream> streams_;
  std::vector<std::shared_future<Status>> sessions_;
};

TEST_F(StreamingPullTest, NeverHasMoreThanMaxOutstandingMessagesOutAndAnAckMakesRoom) {
  CreateSub();
  Publish(5);
  MemoryStream& stream = NewStream();
  Open(stream, First(3));
  auto got = stream.WaitForMessages(3);
  ASSERT_THAT(got, SizeIs(3));
  // The session holds three and waits for room (the clock does not move, so no lease runs out): the other two
  // are still there for anyone.
  auto rest = broker_->Pull(kSub, 10, true);
  ASSERT_THAT(rest, IsOk());
  EXPECT_THAT(*rest, SizeIs(2));
  ASSERT_THAT(broker_->Acknowledge(kSub, {(*rest)[0].ack_id, (*rest)[1].ack_id}), IsOk());

  stream.Send(Ack({got[0].ack_id()}));  // room for one more
  Publish(1);
  EXPECT_THAT(stream.WaitForMessages(4), SizeIs(4));
}

TEST_F(StreamingPullTest, AnUnaryAckFreesTheStreamsRoomToo) {
  CreateSub();
  Publish(2);
  MemoryStream& stream = NewStream();
  Open(stream, First(1));
  auto got = stream.WaitForMessages(1);
  ASSERT_THAT(got, SizeIs(1));
  ASSERT_THAT(broker_->Acknowledge(kSub, {got[0].ack_id()}), IsOk());
  leases_.Settle({got[0].ack_id()});  // as the unary Acknowledge method does
  EXPECT_THAT(stream.WaitForMessages(2), SizeIs(2));
}

// Acks and deadline changes come in batches naming the ack ids of several streams, in any order: each reaches
// the stream that handed it out, and only that one.
TEST(LeaseRegistryTest, ABatchReachesEachIdsOwnStream) {
  ferry::testing::FakeClock clock;
  LeaseRegistry registry(clock);
  // One message out each at most: with one left, each is full, and a lease that ran out makes room.
  auto a = std::make_shared<StreamFlowControl>(clock, 1, 0);
  auto b = std::make_shared<StreamFlowControl>(clock, 1, 0);
  auto c = std::make_shared<StreamFlowControl>(clock, 1, 0);
  auto const deadline = clock.SteadyNow() + seconds(10);
  for (auto const& [flow, ids] : {std::pair{a, std::vector<std::string>{"a1", "a2"}},
                                  std::pair{b, std::vector<std::string>{"b1", "b2"}},
                                  std::pair{c, std::vector<std::string>{"c1", "c2"}}}) {
    for (auto const& id : ids) flow->Add(id, 1, deadline);
    registry.Add(ids, flow);
  }
  registry.Extend({"b1", "a1", "b2", "unknown"}, 60);
  registry.Settle({"a2", "c1", "b1", "a2", "unknown"});
  EXPECT_EQ(a->outstanding(), 1);
  EXPECT_EQ(b->outstanding(), 1);
  EXPECT_EQ(c->outstanding(), 1);
  EXPECT_THAT(a->AckIds(), ElementsAre("a1"));
  EXPECT_THAT(b->AckIds(), ElementsAre("b2"));
  EXPECT_THAT(c->AckIds(), ElementsAre("c2"));
  // Past the first deadline: the extended leases still count, the other ran out.
  clock.Advance(seconds(11));
  EXPECT_EQ(a->Room(milliseconds(0)), 0);
  EXPECT_EQ(b->Room(milliseconds(0)), 0);
  EXPECT_EQ(c->Room(milliseconds(0)), 1);
}

TEST_F(StreamingPullTest, ALeaseThatRunsOutStopsCountingAtItsDeadline) {
  CreateSub();
  Publish(2);
  MemoryStream& stream = NewStream();
  Open(stream, First(1));
  ASSERT_THAT(stream.WaitForMessages(1), SizeIs(1));
  clock_.Advance(seconds(11));  // past the stream's 10 s ack deadline, nothing acked
  auto got = stream.WaitForMessages(2);
  ASSERT_THAT(got, SizeIs(2));
}

TEST_F(StreamingPullTest, MessagesLeasedAfterTheClientLeftGoBackAsTheSameAttempt) {
  CreateSub();
  MemoryStream& first_stream = NewStream();
  auto first = Open(first_stream, First());
  // The session waits in its pull (the fake clock never ends the wait) when the client closes: the wait ends
  // at once, and a message published next is not leased for the stream that is gone.
  ASSERT_TRUE(WaitsInItsPull());
  first_stream.HalfClose();
  ASSERT_EQ(first.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_THAT(first.get(), IsOk());
  Publish(1);

  MemoryStream& second_stream = NewStream();
  Open(second_stream, First());
  auto got = second_stream.WaitForMessages(1);
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0].delivery_attempt(), 1);
}

TEST_F(StreamingPullTest, ExactlyOnceAcksAreConfirmedOnTheStreamEachIdWithItsOutcome) {
  CreateSub(/*exactly_once=*/true);
  Publish(2);
  MemoryStream& stream = NewStream();
  Open(stream, First());
  auto got = stream.WaitForMessages(2);
  ASSERT_THAT(got, SizeIs(2));
  pb::StreamingPullRequest nack;  // ends the first one's lease: its ack id is no longer good
  nack.add_modify_deadline_ack_ids(got[0].ack_id());
  nack.add_modify_deadline_seconds(0);
  stream.Send(nack);
  ASSERT_THAT(stream.WaitForConfirmations(1), SizeIs(1));
  stream.Send(Ack({got[1].ack_id(), got[0].ack_id()}));
  auto confirmations = stream.WaitForConfirmations(2);
  ASSERT_THAT(confirmations, SizeIs(2));
  EXPECT_THAT(confirmations[0].modify_ack_deadline_confirmation().ack_ids(), ElementsAre(got[0].ack_id()));
  auto const& c = confirmations[1].acknowledge_confirmation();
  EXPECT_THAT(c.ack_ids(), ElementsAre(got[1].ack_id()));
  EXPECT_THAT(c.invalid_ack_ids(), ElementsAre(got[0].ack_id()));
}

TEST_F(StreamingPullTest, FlowControlOnALaterRequestEndsTheStreamWithInvalidArgument) {
  CreateSub();
  MemoryStream& stream = NewStream();
  auto run = Open(stream, First());
  pb::StreamingPullRequest later;
  later.set_max_outstanding_messages(5);
  stream.Send(later);
  // Its wait for messages ends at once (the clock does not move): a failed stream is woken, not polled.
  ASSERT_EQ(run.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_THAT(run.get(), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(StreamingPullTest, AnAckDeadlineOutOfRangeIsRefusedAtOnce) {
  CreateSub();
  MemoryStream& stream = NewStream();
  auto first = First();
  first.set_stream_ack_deadline_seconds(5);
  EXPECT_THAT(StreamingPullSession(*broker_, clock_, leases_, stopping_).Run(stream, first),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(StreamingPullTest, AStoppingServerEndsItsStreamsWithUnavailable) {
  CreateSub();
  MemoryStream& stream = NewStream();
  auto run = Open(stream, First());
  stopping_ = true;
  ASSERT_TRUE(EndsAsTheClockMoves(run));
  EXPECT_THAT(run.get(), StatusIs(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace ferry
