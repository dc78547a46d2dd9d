#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store/ack_id.h"
#include "store/postgres/pg_conn.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace ferry {
namespace {

using ::ferry::testing::IsOk;
using ::ferry::testing::IsOkAndHolds;
using ::ferry::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kTopic[] = "projects/p/topics/bar";
constexpr char kDlt[] = "projects/p/topics/bar-failed";
constexpr char kSub[] = "projects/p/subscriptions/sub1";
constexpr char kSub2[] = "projects/p/subscriptions/sub2";
constexpr char kDltSub[] = "projects/p/subscriptions/failed";
constexpr int64_t kNow = 1'800'000'000'000;

Subscription MakeSub(std::string name, std::string topic) {
  Subscription s;
  s.name = std::move(name);
  s.topic = std::move(topic);
  return s;
}

PubsubMessage Msg(std::string data) { return PubsubMessage{.data = std::move(data)}; }

// The backends every test here runs against: the contract of store/store.h, whatever keeps it.
enum class Backend { kSqlite, kPostgres };

std::string BackendName(::testing::TestParamInfo<Backend> const& info) {
  switch (info.param) {
    case Backend::kSqlite:
      return "Sqlite";
    case Backend::kPostgres:
      return "Postgres";
  }
  return "Unknown";
}

// The test server's connection string (ctest starts one: scripts/test_postgres.sh), or "" when there is none.
std::string PostgresServer() {
  char const* file = std::getenv("FERRY_TEST_POSTGRES");
  if (file == nullptr) return "";
  std::ifstream in(file);
  std::string conninfo;
  std::getline(in, conninfo);
  return conninfo;
}

class StoreContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      server_ = PostgresServer();
      if (server_.empty()) GTEST_SKIP() << "no PostgreSQL server: run through ctest, which starts one";
      // A database of its own for each test.
      static std::atomic<int> counter{0};
      database_ = "contract_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
      auto admin = PgConn::Open(server_);
      ASSERT_THAT(admin, IsOk());
      ASSERT_THAT((*admin)->Exec("CREATE DATABASE " + database_), IsOk());
    }
    Open();
  }

  void TearDown() override {
    store_.reset();
    if (!database_.empty()) {
      auto admin = PgConn::Open(server_);
      ASSERT_THAT(admin, IsOk());
      EXPECT_THAT((*admin)->Exec("DROP DATABASE " + database_ + " WITH (FORCE)"), IsOk());
    }
  }

  // Opens the store (again: a reopen sees only what was durable).
  void Open() {
    store_.reset();
    auto store = GetParam() == Backend::kSqlite ? MakeSqliteStore({.data_dir = dir_.path(), .sync = true})
                                                : MakePostgresStore(server_ + " dbname=" + database_);
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  void CreateTopicAndSub() {
    ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
    ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub, kTopic)), IsOk());
  }

  // SQLite: closes the store and checks its file holds no message (each went with its last hold).
  void ExpectNoMessageRowsLeft() {
    if (GetParam() != Backend::kSqlite) return;
    store_.reset();
    auto db = SqliteDb::Open(dir_.path() + "/ferry.db");
    ASSERT_THAT(db, IsOk());
    auto count = (*db)->Prepare("SELECT COUNT(*) FROM messages");
    ASSERT_THAT(count, IsOk());
    ASSERT_THAT((*count)->Step(), IsOk());
    EXPECT_EQ((*count)->Int(0), 0);
  }

  std::vector<std::string> Data(std::vector<ReceivedMessage> const& received) {
    std::vector<std::string> out;
    for (auto const& r : received) out.push_back(r.message.data);
    return out;
  }

  ferry::testing::TempDir dir_;
  std::string server_, database_;  // PostgreSQL only
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContractTest, PublishFansOutToEverySubscription) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->CreateSubscription(MakeSub("projects/p/subscriptions/sub2", kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2")}, kNow), IsOk());
  auto a = store_->Lease(kSub, 10, kNow);
  auto b = store_->Lease("projects/p/subscriptions/sub2", 10, kNow);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_THAT(Data(a->messages), ElementsAre("m1", "m2"));
  EXPECT_THAT(Data(b->messages), ElementsAre("m1", "m2"));
}

TEST_P(StoreContractTest, LeaseStopsAtItsByteBudgetWithoutCountingAnAttempt) {
  CreateTopicAndSub();
  std::string big(600, 'x');
  ASSERT_THAT(store_->Publish(kTopic, {Msg(big), Msg(big), Msg(big)}, kNow), IsOk());
  // 1000 bytes fit one 600-byte message; the others stay available.
  auto first = store_->Lease(kSub, 10, kNow, 0, 1000);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(first->messages, SizeIs(1));
  // A message bigger than the budget still goes alone, so nothing is stuck.
  auto second = store_->Lease(kSub, 10, kNow, 0, 100);
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT(second->messages, SizeIs(1));
  auto rest = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(rest, IsOk());
  ASSERT_THAT(rest->messages, SizeIs(1));
  // Each went out once: the ones left behind were not counted as delivered.
  for (auto const* lease : {&*first, &*second, &*rest}) EXPECT_EQ(lease->messages[0].attempt, 1);
}

TEST_P(StoreContractTest, AckOnOneSubscriptionLeavesTheOthersCopy) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("shared")}, kNow), IsOk());
  auto first = store_->Lease(kSub, 1, kNow);
  ASSERT_THAT(store_->Acknowledge(kSub, {first->messages[0].ack_id}, kNow), IsOk());
  Open();
  auto second = store_->Lease(kSub2, 1, kNow);
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT(Data(second->messages), ElementsAre("shared"));
  ASSERT_THAT(store_->Acknowledge(kSub2, {second->messages[0].ack_id}, kNow), IsOk());
  ASSERT_THAT(store_->DeleteSubscription(kSub2), IsOk());
  ExpectNoMessageRowsLeft();  // the last hold let go: the message itself is gone
}

// Acks of consecutive messages go to the store as ranges (SplitIntoRuns): each message still goes only with its
// last hold.
TEST_P(StoreContractTest, ARunOfAcksReleasesEachMessageOnlyWithItsLastHold) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a"), Msg("b"), Msg("c"), Msg("d"), Msg("e"), Msg("f")}, kNow), IsOk());
  auto ack_all = [&](char const* sub) {
    auto lease = store_->Lease(sub, 10, kNow);
    ASSERT_THAT(lease, IsOk());
    EXPECT_THAT(Data(lease->messages), ElementsAre("a", "b", "c", "d", "e", "f"));
    std::vector<std::string> ids;
    for (auto const& r : lease->messages) ids.push_back(r.ack_id);
    auto acked = store_->Acknowledge(sub, ids, kNow);
    ASSERT_THAT(acked, IsOk());
    EXPECT_EQ(acked->acked, 6);
  };
  ack_all(kSub);
  ack_all(kSub2);
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 60'000)->messages, SizeIs(0));
  EXPECT_THAT(store_->Lease(kSub2, 10, kNow + 60'000)->messages, SizeIs(0));
  ExpectNoMessageRowsLeft();
}

TEST_P(StoreContractTest, DeletingASubscriptionKeepsMessagesOthersHold) {
  CreateTopicAndSub();
  constexpr char kSub2[] = "projects/p/subscriptions/sub2";
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2")}, kNow), IsOk());
  ASSERT_THAT(store_->DeleteSubscription(kSub2), IsOk());
  auto lease = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(lease, IsOk());
  EXPECT_THAT(Data(lease->messages), ElementsAre("m1", "m2"));
}

TEST_P(StoreContractTest, SubscriptionHoldsOnlyMessagesPublishedAfterIt) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("early")}, kNow), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("late")}, kNow), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("late"));
}

TEST_P(StoreContractTest, MessageIdsAreUniqueAndNeverReused) {
  CreateTopicAndSub();
  auto first = store_->Publish(kTopic, {Msg("m1")}, kNow);
  auto lease = store_->Lease(kSub, 1, kNow);
  ASSERT_THAT(store_->Acknowledge(kSub, {lease->messages[0].ack_id}, kNow), IsOk());
  Open();
  auto second = store_->Publish(kTopic, {Msg("m2")}, kNow);
  ASSERT_THAT(second, IsOk());
  EXPECT_NE((*first)[0], (*second)[0]);
}

// Every byte of data, and text with the characters a bulk load must escape, come back as they went in.
TEST_P(StoreContractTest, MessagesKeepEveryByteAndCharacter) {
  CreateTopicAndSub();
  Subscription ordered = MakeSub("projects/p/subscriptions/ordered", kTopic);
  ordered.enable_message_ordering = true;
  ASSERT_THAT(store_->CreateSubscription(ordered), IsOk());
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  std::string const tricky = "tab\there\nnewline\\back\\slash\rreturn \\x00 é";
  PubsubMessage m{.data = every_byte, .attributes = {{tricky, tricky}, {"k", ""}}, .ordering_key = tricky};
  ASSERT_THAT(store_->Publish(kTopic, {m, Msg("")}, kNow), IsOk());
  for (std::string const& sub : {std::string(kSub), ordered.name}) {
    auto leased = store_->Lease(sub, 10, kNow);
    ASSERT_THAT(leased, IsOk());
    ASSERT_THAT(leased->messages, SizeIs(2)) << sub;
    auto const& got = leased->messages[0].message;
    EXPECT_EQ(got.data, every_byte) << sub;
    EXPECT_EQ(got.attributes, m.attributes) << sub;
    EXPECT_EQ(got.ordering_key, tricky) << sub;
    EXPECT_EQ(leased->messages[1].message.data, "") << sub;
  }
}

TEST_P(StoreContractTest, PublishedMessagesSurviveReopen) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2")}, kNow), IsOk());
  Open();
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("m1", "m2"));
}

TEST_P(StoreContractTest, AcknowledgedMessagesStayGoneAfterReopen) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2")}, kNow), IsOk());
  auto lease = store_->Lease(kSub, 1, kNow);
  ASSERT_THAT(lease->messages, SizeIs(1));
  ASSERT_THAT(store_->Acknowledge(kSub, {lease->messages[0].ack_id}, kNow), IsOk());
  Open();
  // After the lease expires only the unacknowledged message comes back.
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow + 60'000)->messages), ElementsAre("m2"));
}

TEST_P(StoreContractTest, LeasedMessageIsNotDeliveredTwiceBeforeItsDeadline) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1")}, kNow), IsOk());
  ASSERT_THAT(store_->Lease(kSub, 10, kNow)->messages, SizeIs(1));
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 9'999)->messages, SizeIs(0));
  auto again = store_->Lease(kSub, 10, kNow + 10'000);
  ASSERT_THAT(again->messages, SizeIs(1));
  EXPECT_EQ(again->expired, 1);
  EXPECT_EQ(again->messages[0].attempt, 2);
  EXPECT_EQ(again->messages[0].delivery_attempt, 0);  // no dead-letter policy: the API omits it
}

// The SQLite store keeps leases' deadlines in memory and reads them back from the rows after a start.
TEST_P(StoreContractTest, LeasesOutWhenTheStoreReopensRunOutAtTheirDeadlines) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2"), Msg("m3")}, kNow), IsOk());
  ASSERT_THAT(Data(store_->Lease(kSub, 1, kNow)->messages), ElementsAre("m1"));  // 10 s
  ASSERT_THAT(Data(store_->Lease(kSub, 1, kNow, 30, MessageQueue::kMaxLeaseBytes)->messages), ElementsAre("m2"));
  Open();
  auto fresh = store_->Lease(kSub, 10, kNow + 1'000);
  ASSERT_THAT(Data(fresh->messages), ElementsAre("m3"));
  ASSERT_THAT(store_->Acknowledge(kSub, {fresh->messages[0].ack_id}, kNow + 1'000), IsOk());
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 9'999)->messages, SizeIs(0));
  auto expired = store_->Lease(kSub, 10, kNow + 10'000);
  ASSERT_THAT(Data(expired->messages), ElementsAre("m1"));
  EXPECT_EQ(expired->expired, 1);
  EXPECT_EQ(expired->messages[0].attempt, 2);
  ASSERT_THAT(store_->Acknowledge(kSub, {expired->messages[0].ack_id}, kNow + 10'000), IsOk());
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 29'999)->messages, SizeIs(0));
  auto later = store_->Lease(kSub, 10, kNow + 30'000);
  EXPECT_THAT(Data(later->messages), ElementsAre("m2"));
  EXPECT_EQ(later->expired, 1);
}

TEST_P(StoreContractTest, ConcurrentPublishesAllLandWithDistinctIds) {
  CreateTopicAndSub();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = store_->Publish(kTopic, {Msg("t" + std::to_string(t))}, kNow);
        if (r.ok()) ids[t].push_back((*r)[0]);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (auto const& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_THAT(store_->Lease(kSub, 1000, kNow)->messages, SizeIs(kThreads * kPerThread));
}

TEST_P(StoreContractTest, MissingTopicsAndDuplicatesAreRefused) {
  EXPECT_THAT(store_->CreateSubscription(MakeSub(kSub, kTopic)), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store_->Publish(kTopic, {Msg("x")}, kNow), StatusIs(StatusCode::kNotFound));
  CreateTopicAndSub();
  EXPECT_THAT(store_->CreateTopic({.name = kTopic}), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(store_->CreateSubscription(MakeSub(kSub, kTopic)), StatusIs(StatusCode::kAlreadyExists));
  auto with_dlt = MakeSub("projects/p/subscriptions/other", kTopic);
  with_dlt.dead_letter_policy = DeadLetterPolicy{kDlt, 5};
  auto st = store_->CreateSubscription(with_dlt);
  EXPECT_THAT(st, StatusIs(StatusCode::kNotFound));
  EXPECT_EQ(st.message(), "Dead letter topic not found");
}

TEST_P(StoreContractTest, MalformedAckIdIsInvalidArgumentAndAcksNothing) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1")}, kNow), IsOk());
  auto lease = store_->Lease(kSub, 1, kNow);
  auto st = store_->Acknowledge(kSub, {lease->messages[0].ack_id, "garbage"}, kNow);
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(st.status().message(), "Invalid ack id (ack_id=garbage)");
  EXPECT_THAT(store_->Lease(kSub, 1, kNow + 10'000)->messages, SizeIs(1));
}

TEST_P(StoreContractTest, NackAtLastAttemptMovesMessageToDeadLetterTopic) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  ASSERT_THAT(store_->CreateTopic({.name = kDlt}), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kDltSub, kDlt)), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  sub.dead_letter_policy = DeadLetterPolicy{kDlt, 5};
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {PubsubMessage{.data = "{}", .attributes = {{"k", "v"}}}}, kNow), IsOk());
  for (int attempt = 1; attempt <= 5; ++attempt) {
    auto lease = store_->Lease(kSub, 1, kNow);
    ASSERT_THAT(lease->messages, SizeIs(1));
    EXPECT_EQ(lease->messages[0].delivery_attempt, attempt);
    auto nack = store_->ModifyAckDeadline(kSub, {lease->messages[0].ack_id}, 0, kNow);
    ASSERT_THAT(nack, IsOk());
    EXPECT_EQ(nack->dead_lettered, attempt == 5 ? 1 : 0);
  }
  EXPECT_THAT(store_->Lease(kSub, 1, kNow)->messages, SizeIs(0));
  auto dead = store_->Lease(kDltSub, 1, kNow);
  ASSERT_THAT(dead->messages, SizeIs(1));
  auto const& attrs = dead->messages[0].message.attributes;
  EXPECT_EQ(dead->messages[0].message.data, "{}");
  EXPECT_EQ(attrs.at("k"), "v");
  EXPECT_EQ(attrs.at("CloudPubSubDeadLetterSourceDeliveryCount"), "5");
  EXPECT_EQ(attrs.at("CloudPubSubDeadLetterSourceSubscription"), "sub1");
  EXPECT_EQ(attrs.at("CloudPubSubDeadLetterSourceSubscriptionProject"), "p");
  EXPECT_EQ(attrs.at("CloudPubSubDeadLetterSourceTopicPublishTime"), "2027-01-15T08:00:00.000Z");
}

TEST_P(StoreContractTest, StaleAckIdCannotExtendARedeliveredLease) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1")}, kNow), IsOk());
  auto first = store_->Lease(kSub, 1, kNow);
  auto second = store_->Lease(kSub, 1, kNow + 10'000);  // first lease expired
  ASSERT_THAT(second->messages, SizeIs(1));
  ASSERT_THAT(store_->ModifyAckDeadline(kSub, {first->messages[0].ack_id}, 600, kNow + 10'000), IsOk());
  // The second lease still ends at its own deadline.
  EXPECT_THAT(store_->Lease(kSub, 1, kNow + 20'000)->messages, SizeIs(1));
}

TEST_P(StoreContractTest, DeletingATopicDetachesItsSubscriptions) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1")}, kNow), IsOk());
  ASSERT_THAT(store_->DeleteTopic(kTopic), IsOk());
  EXPECT_THAT(store_->GetTopic(kTopic), StatusIs(StatusCode::kNotFound));
  auto sub = store_->GetSubscription(kSub);
  ASSERT_THAT(sub, IsOk());
  EXPECT_EQ(sub->topic, "_deleted-topic_");
  EXPECT_THAT(store_->Lease(kSub, 1, kNow)->messages, SizeIs(1));
}

TEST_P(StoreContractTest, RetentionDropsOldMessages) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("old")}, kNow), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("new")}, kNow + kDefaultRetentionMillis), IsOk());
  auto skipped = store_->Maintain(kNow + kDefaultRetentionMillis + 1, false);
  ASSERT_THAT(skipped, IsOk());
  EXPECT_EQ(skipped->dropped_by_retention, 0);
  auto result = store_->Maintain(kNow + kDefaultRetentionMillis + 1, true);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->dropped_by_retention, 1);
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow + kDefaultRetentionMillis + 1)->messages), ElementsAre("new"));
}

TEST_P(StoreContractTest, ListsPageByName) {
  for (auto id : {"t-a", "t-b", "t-c"}) {
    ASSERT_THAT(store_->CreateTopic({.name = std::string("projects/p/topics/") + id}), IsOk());
  }
  ASSERT_THAT(store_->CreateTopic({.name = "projects/other/topics/t-z"}), IsOk());
  auto page1 = store_->ListTopics("p", {"", 2});
  ASSERT_THAT(page1, IsOk());
  ASSERT_THAT(*page1, SizeIs(2));
  auto page2 = store_->ListTopics("p", {(*page1)[1].name, 2});
  ASSERT_THAT(*page2, SizeIs(1));
  EXPECT_EQ((*page2)[0].name, "projects/p/topics/t-c");
}

TEST_P(StoreContractTest, StatsReportBacklogAndOldestMessage) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1")}, kNow), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m2")}, kNow + 5'000), IsOk());
  auto stats = store_->Stats();
  ASSERT_THAT(stats, IsOk());
  ASSERT_THAT(*stats, SizeIs(1));
  EXPECT_EQ((*stats)[0].backlog, 2);
  EXPECT_EQ((*stats)[0].oldest_unacked_publish_ms, kNow);
}

TEST_P(StoreContractTest, ReadsSeeEveryCommittedWrite) {
  CreateTopicAndSub();
  auto before = store_->GetSubscription(kSub);
  ASSERT_THAT(before, IsOk());
  auto changed = *before;
  changed.ack_deadline_seconds = 42;
  ASSERT_THAT(store_->UpdateSubscription(changed), IsOk());
  EXPECT_EQ(store_->GetSubscription(kSub)->ack_deadline_seconds, 42);
  ASSERT_THAT(store_->DeleteSubscription(kSub), IsOk());
  EXPECT_THAT(store_->GetSubscription(kSub), StatusIs(StatusCode::kNotFound));
}

TEST_P(StoreContractTest, FilterKeepsOnlyMatchingMessages) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto filtered = MakeSub(kSub, kTopic);
  filtered.filter = R"(attributes.kind = "keep")";
  ASSERT_THAT(store_->CreateSubscription(filtered), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  PubsubMessage keep{.data = "keep", .attributes = {{"kind", "keep"}}};
  PubsubMessage drop{.data = "drop", .attributes = {{"kind", "drop"}}};
  ASSERT_THAT(store_->Publish(kTopic, {keep, drop, Msg("plain")}, kNow), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("keep"));
  EXPECT_THAT(Data(store_->Lease(kSub2, 10, kNow)->messages), ElementsAre("keep", "drop", "plain"));
  // What the filter refused is gone from its backlog, as if acknowledged.
  auto stats = store_->Stats();
  ASSERT_THAT(stats, IsOk());
  EXPECT_EQ((*stats)[0].backlog, 1);
}

TEST_P(StoreContractTest, OrderingKeysGoOutInOrderOneBatchAtATime) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto ordered = MakeSub(kSub, kTopic);
  ordered.enable_message_ordering = true;
  ASSERT_THAT(store_->CreateSubscription(ordered), IsOk());
  auto keyed = [](std::string data, std::string key) {
    return PubsubMessage{.data = std::move(data), .ordering_key = std::move(key)};
  };
  ASSERT_THAT(store_->Publish(kTopic, {keyed("a1", "a"), keyed("b1", "b"), keyed("a2", "a")}, kNow), IsOk());
  auto first = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(Data(first->messages), ElementsAre("a1", "b1", "a2"));
  // While a batch of a key is out, newer messages of that key wait; unkeyed and other keys do not.
  ASSERT_THAT(store_->Publish(kTopic, {keyed("a3", "a"), keyed("c1", "c"), Msg("free")}, kNow), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("c1", "free"));
  // A nack of a1 holds the key back and brings a2 back after it, then a3.
  ASSERT_THAT(store_->ModifyAckDeadline(kSub, {first->messages[0].ack_id}, 0, kNow), IsOk());
  ASSERT_THAT(store_->Acknowledge(kSub, {first->messages[1].ack_id}, kNow), IsOk());
  auto again = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(Data(again->messages), ElementsAre("a1", "a2", "a3"));
}

TEST_P(StoreContractTest, ExactlyOnceRefusesExpiredAndStaleAcks) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  sub.enable_exactly_once_delivery = true;
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("m1"), Msg("m2")}, kNow), IsOk());
  auto lease = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(lease, IsOk());
  ASSERT_THAT(lease->messages, SizeIs(2));
  std::string m1 = lease->messages[0].ack_id, m2 = lease->messages[1].ack_id;
  // m1 is acked in time; m2's lease (10 s) has run out.
  auto acked = store_->Acknowledge(kSub, {m1}, kNow + 1'000);
  ASSERT_THAT(acked, IsOk());
  EXPECT_EQ(acked->acked, 1);
  EXPECT_TRUE(acked->invalid_ack_ids.empty());
  auto late = store_->Acknowledge(kSub, {m2, m1}, kNow + 11'000);
  ASSERT_THAT(late, IsOk());
  EXPECT_EQ(late->acked, 0);
  EXPECT_THAT(late->invalid_ack_ids, ElementsAre(m2, m1));
  auto modified = store_->ModifyAckDeadline(kSub, {m2}, 60, kNow + 11'000);
  ASSERT_THAT(modified, IsOk());
  EXPECT_THAT(modified->invalid_ack_ids, ElementsAre(m2));
  // Only m2 comes again; its new ack id works, the old one does not.
  auto redelivered = store_->Lease(kSub, 10, kNow + 12'000);
  ASSERT_THAT(redelivered, IsOk());
  EXPECT_THAT(Data(redelivered->messages), ElementsAre("m2"));
  EXPECT_THAT(store_->Acknowledge(kSub, {m2}, kNow + 12'000)->invalid_ack_ids, ElementsAre(m2));
  EXPECT_EQ(store_->Acknowledge(kSub, {redelivered->messages[0].ack_id}, kNow + 12'000)->acked, 1);
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 100'000)->messages, SizeIs(0));
}

TEST_P(StoreContractTest, SeekToTimeRedeliversRetainedAckedMessages) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto retaining = MakeSub(kSub, kTopic);
  retaining.retain_acked_messages = true;
  ASSERT_THAT(store_->CreateSubscription(retaining), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("old")}, kNow), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("new1"), Msg("new2")}, kNow + 60'000), IsOk());
  for (char const* sub : {kSub, kSub2}) {
    auto lease = store_->Lease(sub, 10, kNow + 61'000);
    ASSERT_THAT(lease, IsOk());
    std::vector<std::string> ids;
    for (auto const& r : lease->messages) ids.push_back(r.ack_id);
    ASSERT_THAT(store_->Acknowledge(sub, ids, kNow + 61'000), IsOk());
  }
  // Back to just before the second publish: what came after is unacknowledged again where it was retained.
  auto sought = store_->SeekToTime(kSub, kNow + 30'000, kNow + 62'000);
  ASSERT_THAT(sought, IsOk()) << sought.message();
  ASSERT_THAT(store_->SeekToTime(kSub2, kNow + 30'000, kNow + 62'000), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow + 62'000)->messages), ElementsAre("new1", "new2"));
  EXPECT_THAT(store_->Lease(kSub2, 10, kNow + 62'000)->messages, SizeIs(0));
  // Forward past everything: all acknowledged.
  ASSERT_THAT(store_->SeekToTime(kSub, kNow + 120'000, kNow + 63'000), IsOk());
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 200'000)->messages, SizeIs(0));
  ASSERT_THAT(store_->SeekToTime(kSub, 0, kNow + 63'000), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow + 63'000)->messages), ElementsAre("old", "new1", "new2"));
}

TEST_P(StoreContractTest, SeekToSnapshotRestoresItsUnackedMessagesAndLaterOnes) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a"), Msg("b")}, kNow), IsOk());
  auto snap = store_->CreateSnapshot({.name = "projects/p/snapshots/snap1"}, kSub, kNow + 1'000);
  ASSERT_THAT(snap, IsOk());
  EXPECT_EQ(snap->topic, kTopic);
  EXPECT_EQ(snap->expire_time_ms, kNow + kSnapshotLifetimeMillis);  // from the oldest unacked message
  EXPECT_THAT(store_->CreateSnapshot({.name = "projects/p/snapshots/snap1"}, kSub, kNow),
              StatusIs(StatusCode::kAlreadyExists));
  ASSERT_THAT(store_->Publish(kTopic, {Msg("c")}, kNow + 2'000), IsOk());
  auto lease = store_->Lease(kSub, 10, kNow + 3'000);
  ASSERT_THAT(lease, IsOk());
  std::vector<std::string> ids;
  for (auto const& r : lease->messages) ids.push_back(r.ack_id);
  ASSERT_THAT(store_->Acknowledge(kSub, ids, kNow + 3'000), IsOk());  // not retained: gone but for the snapshot
  ASSERT_THAT(store_->SeekToSnapshot(kSub, "projects/p/snapshots/snap1", kNow + 4'000), IsOk());
  // a and b from the snapshot; c was published after it but acked and not retained, so it stays acked.
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow + 4'000)->messages), ElementsAre("a", "b"));
  EXPECT_THAT(*store_->ListTopicSnapshots(kTopic, {}), ElementsAre("projects/p/snapshots/snap1"));
  ASSERT_THAT(store_->DeleteSnapshot("projects/p/snapshots/snap1"), IsOk());
  EXPECT_THAT(store_->GetSnapshot("projects/p/snapshots/snap1"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store_->SeekToSnapshot(kSub, "projects/p/snapshots/snap1", kNow), StatusIs(StatusCode::kNotFound));
}

// A seek sets the subscription's acknowledgement state as a whole: an ack of a delivery from before it, arriving
// after it (a client's batched acks race its next call), must not undo it, nor a deadline change hold the message.
TEST_P(StoreContractTest, AckIdsFromBeforeASeekNameNothingAfterIt) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto retaining = MakeSub(kSub, kTopic);
  retaining.retain_acked_messages = true;
  ASSERT_THAT(store_->CreateSubscription(retaining), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a"), Msg("b")}, kNow), IsOk());
  auto before = store_->Lease(kSub, 10, kNow + 1'000);
  ASSERT_THAT(before, IsOk());
  ASSERT_THAT(before->messages, SizeIs(2));
  std::string const a = before->messages[0].ack_id, b = before->messages[1].ack_id;
  ASSERT_THAT(store_->SeekToTime(kSub, 0, kNow + 2'000), IsOk());  // while both are still out
  auto late = store_->Acknowledge(kSub, {a}, kNow + 2'000);
  ASSERT_THAT(late, IsOk());
  EXPECT_EQ(late->acked, 0);
  ASSERT_THAT(store_->ModifyAckDeadline(kSub, {b}, 600, kNow + 2'000), IsOk());
  auto after = store_->Lease(kSub, 10, kNow + 2'000);
  ASSERT_THAT(after, IsOk());
  EXPECT_THAT(Data(after->messages), ElementsAre("a", "b"));
  EXPECT_NE(after->messages[0].ack_id, a);
  // Again once acknowledged and sought back, and once redelivered with the same attempt number as before.
  ASSERT_THAT(store_->Acknowledge(kSub, {after->messages[0].ack_id, after->messages[1].ack_id}, kNow + 3'000),
              IsOk());
  ASSERT_THAT(store_->SeekToTime(kSub, 0, kNow + 4'000), IsOk());
  auto again = store_->Lease(kSub, 10, kNow + 4'000);
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT(again->messages, SizeIs(2));
  EXPECT_EQ(store_->Acknowledge(kSub, {a, b, after->messages[0].ack_id}, kNow + 4'000)->acked, 0);
  EXPECT_EQ(*store_->ReturnUnsent(kSub, {after->messages[1].ack_id}, kNow + 4'000), 0);
  EXPECT_EQ(store_->Acknowledge(kSub, {again->messages[0].ack_id, again->messages[1].ack_id}, kNow + 4'000)->acked,
            2);
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 100'000)->messages, SizeIs(0));
}

TEST_P(StoreContractTest, ReturnUnsentGivesLeasesBackWithoutCountingAnAttempt) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a")}, kNow), IsOk());
  auto first = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(first->messages, SizeIs(1));
  EXPECT_EQ(first->messages[0].attempt, 1);
  EXPECT_THAT(store_->ReturnUnsent(kSub, {first->messages[0].ack_id}, kNow), IsOkAndHolds(1));
  // Back at once, with the attempt number the unsent delivery would have had; its old ack id is now stale.
  auto again = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(again->messages, SizeIs(1));
  EXPECT_EQ(again->messages[0].attempt, 1);
  EXPECT_THAT(store_->ReturnUnsent(kSub, {"garbage"}, kNow), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(StoreContractTest, NackWaitsOutTheRetryPolicyBackoff) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  sub.retry_policy = RetryPolicy{.minimum_backoff_ms = 10'000, .maximum_backoff_ms = 600'000};
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a")}, kNow), IsOk());
  auto leased = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(leased->messages, SizeIs(1));
  auto nacked = store_->ModifyAckDeadline(kSub, {leased->messages[0].ack_id}, 0, kNow);
  ASSERT_THAT(nacked, IsOk());
  EXPECT_EQ(nacked->nacked, 1);
  EXPECT_THAT(store_->Lease(kSub, 10, kNow + 9'999)->messages, SizeIs(0));
  auto retried = store_->Lease(kSub, 10, kNow + 10'000);
  ASSERT_THAT(retried->messages, SizeIs(1));
  EXPECT_EQ(retried->messages[0].attempt, 2);
}

TEST_P(StoreContractTest, ExpiredLeaseAtLastAttemptIsDeadLetteredByMaintenance) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  ASSERT_THAT(store_->CreateTopic({.name = kDlt}), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kDltSub, kDlt)), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  sub.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = kDlt, .max_delivery_attempts = 5};
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a")}, kNow), IsOk());
  int64_t t = kNow;
  for (int attempt = 1; attempt <= 5; ++attempt) {
    auto leased = store_->Lease(kSub, 10, t);
    ASSERT_THAT(leased->messages, SizeIs(1));
    EXPECT_EQ(leased->messages[0].delivery_attempt, attempt);
    t += int64_t{sub.ack_deadline_seconds} * 1000;  // let the lease run out
  }
  auto maintained = store_->Maintain(t, false);
  ASSERT_THAT(maintained, IsOk());
  EXPECT_THAT(maintained->dead_lettered, ElementsAre(std::pair<std::string, int>(kSub, 1)));
  EXPECT_THAT(store_->Lease(kSub, 10, t)->messages, SizeIs(0));
  auto dead = store_->Lease(kDltSub, 10, t);
  ASSERT_THAT(dead->messages, SizeIs(1));
  EXPECT_EQ(dead->messages[0].message.attributes.at("CloudPubSubDeadLetterSourceDeliveryCount"), "5");
}

// Maintenance may keep the subscriptions it read (SQLite decodes them once, not every second): a dead-letter
// policy added, a subscription made or deleted since, each counts at its next run.
TEST_P(StoreContractTest, MaintenanceSeesSubscriptionsChangedSinceItsLastRun) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  ASSERT_THAT(store_->CreateTopic({.name = kDlt}), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kDltSub, kDlt)), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a")}, kNow), IsOk());
  int64_t t = kNow;
  auto lease_and_expire = [&](std::string const& name) {
    auto leased = store_->Lease(name, 10, t);
    ASSERT_THAT(leased, IsOk());
    ASSERT_THAT(leased->messages, SizeIs(1));
    t += int64_t{sub.ack_deadline_seconds} * 1000;
  };
  for (int attempt = 1; attempt <= 5; ++attempt) lease_and_expire(kSub);
  ASSERT_THAT(store_->Maintain(t, false), IsOk());  // no policy yet: nothing to dead-letter

  sub.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = kDlt, .max_delivery_attempts = 5};
  ASSERT_THAT(store_->UpdateSubscription(sub), IsOk());
  auto maintained = store_->Maintain(t, false);
  ASSERT_THAT(maintained, IsOk());
  EXPECT_THAT(maintained->dead_lettered, ElementsAre(std::pair<std::string, int>(kSub, 1)));

  auto sub2 = MakeSub(kSub2, kTopic);
  sub2.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = kDlt, .max_delivery_attempts = 5};
  ASSERT_THAT(store_->CreateSubscription(sub2), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("b")}, t), IsOk());
  for (int attempt = 1; attempt <= 5; ++attempt) lease_and_expire(kSub2);
  ASSERT_THAT(store_->DeleteSubscription(kSub), IsOk());
  maintained = store_->Maintain(t, false);
  ASSERT_THAT(maintained, IsOk());
  EXPECT_THAT(maintained->dead_lettered, ElementsAre(std::pair<std::string, int>(kSub2, 1)));
  EXPECT_THAT(store_->Lease(kDltSub, 10, t)->messages, SizeIs(2));
}

// Deadline changes, as clients send them all the time: an extension holds the lease past the deadline it was
// leased with (for a lease, maintenance and an exactly-once ack alike), a shorter one ends it sooner, and an
// extension of a lease given back unsent does not hold the next one.
TEST_P(StoreContractTest, ADeadlineChangeHoldsOrEndsTheLeaseWhenItSays) {
  ASSERT_THAT(store_->CreateTopic({.name = kTopic}), IsOk());
  ASSERT_THAT(store_->CreateTopic({.name = kDlt}), IsOk());
  auto sub = MakeSub(kSub, kTopic);
  sub.dead_letter_policy = DeadLetterPolicy{.dead_letter_topic = kDlt, .max_delivery_attempts = 5};
  sub.enable_exactly_once_delivery = true;
  ASSERT_THAT(store_->CreateSubscription(sub), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a"), Msg("b"), Msg("c")}, kNow), IsOk());
  int64_t const deadline = int64_t{sub.ack_deadline_seconds} * 1000;
  int64_t t = kNow;
  std::vector<ReceivedMessage> out;
  for (int attempt = 1; attempt <= 5; ++attempt) {  // to the last attempt, where an expiry is a dead letter
    auto leased = store_->Lease(kSub, 10, t);
    ASSERT_THAT(leased, IsOk());
    ASSERT_THAT(leased->messages, SizeIs(3));
    out = leased->messages;
    if (attempt < 5) t += deadline;
  }
  auto modified = store_->ModifyAckDeadline(kSub, {out[0].ack_id, out[2].ack_id}, 600, t + 1'000);
  ASSERT_THAT(modified, IsOk());
  EXPECT_THAT(modified->invalid_ack_ids, IsEmpty());
  ASSERT_THAT(store_->ModifyAckDeadline(kSub, {out[1].ack_id}, 1, t + 1'000), IsOk());
  // Past the deadline they were leased with: b's shortened lease has ended (dead-lettered), a and c still held.
  int64_t const later = t + deadline + 1'000;
  auto maintained = store_->Maintain(later, false);
  ASSERT_THAT(maintained, IsOk());
  EXPECT_THAT(maintained->dead_lettered, ElementsAre(std::pair<std::string, int>(kSub, 1)));
  EXPECT_THAT(store_->Lease(kSub, 10, later)->messages, SizeIs(0));
  auto acked = store_->Acknowledge(kSub, {out[0].ack_id}, later);
  ASSERT_THAT(acked, IsOk());
  EXPECT_EQ(acked->acked, 1);
  EXPECT_THAT(acked->invalid_ack_ids, IsEmpty());
  // c's extension ends too; the lease that ends with it was the last attempt.
  EXPECT_THAT(store_->Maintain(t + 602'000, false)->dead_lettered, ElementsAre(std::pair<std::string, int>(kSub, 1)));
  EXPECT_THAT(store_->Lease(kSub, 10, t + 602'000)->messages, SizeIs(0));

  // Given back unsent after an extension: the next lease, with the same attempt number, ends at its own deadline.
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("d")}, kNow), IsOk());
  auto first = store_->Lease(kSub2, 10, kNow);
  ASSERT_THAT(first->messages, SizeIs(1));
  ASSERT_THAT(store_->ModifyAckDeadline(kSub2, {first->messages[0].ack_id}, 600, kNow), IsOk());
  ASSERT_EQ(*store_->ReturnUnsent(kSub2, {first->messages[0].ack_id}, kNow), 1);
  auto second = store_->Lease(kSub2, 10, kNow);
  ASSERT_THAT(second->messages, SizeIs(1));
  EXPECT_EQ(second->messages[0].attempt, first->messages[0].attempt);
  auto third = store_->Lease(kSub2, 10, kNow + deadline);
  ASSERT_THAT(third, IsOk());
  EXPECT_THAT(Data(third->messages), ElementsAre("d"));
}

TEST_P(StoreContractTest, ADeploymentThatFailsChangesNothing) {
  Deployment d;
  d.create_topics.push_back({.name = kTopic});
  d.put_functions.push_back({"projects/p/locations/r/functions/bar", "{}"});
  d.put_schedules.push_back({"projects/p/locations/r/jobs/tick", "{}", kNow + 60'000});
  d.put_buckets.push_back({"b1", "p", "/srv/b1", false});
  d.create_subscriptions.push_back(MakeSub(kSub, "projects/p/topics/missing"));
  EXPECT_THAT(store_->ApplyDeployment(d), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store_->GetTopic(kTopic), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(*store_->ListFunctions(), SizeIs(0));
  EXPECT_THAT(*store_->ListSchedules(), SizeIs(0));
  EXPECT_THAT(*store_->ListBuckets(), SizeIs(0));

  d.create_subscriptions = {MakeSub(kSub, kTopic)};
  ASSERT_THAT(store_->ApplyDeployment(d), IsOk());
  EXPECT_THAT(store_->GetSubscription(kSub), IsOk());
  EXPECT_THAT(*store_->ListFunctions(), SizeIs(1));
  EXPECT_THAT(*store_->ListBuckets(), ElementsAre(BucketRecord{"b1", "p", "/srv/b1", false}));
  // The same deploy again creates what exists: refused whole.
  EXPECT_THAT(store_->ApplyDeployment(d), StatusIs(StatusCode::kAlreadyExists));

  Deployment gone;
  gone.delete_functions.push_back("projects/p/locations/r/functions/bar");
  gone.delete_subscriptions.push_back(kSub);
  gone.delete_buckets.push_back("b1");
  gone.delete_schedules.push_back("projects/p/locations/r/jobs/tick");
  ASSERT_THAT(store_->ApplyDeployment(gone), IsOk());
  EXPECT_THAT(*store_->ListFunctions(), SizeIs(0));
  EXPECT_THAT(*store_->ListSchedules(), SizeIs(0));
  EXPECT_THAT(*store_->ListBuckets(), SizeIs(0));
  EXPECT_THAT(store_->GetSubscription(kSub), StatusIs(StatusCode::kNotFound));
}

TEST_P(StoreContractTest, EachScheduleTickFiresOnceWithItsPublish) {
  CreateTopicAndSub();
  constexpr char kJob[] = "projects/p/locations/r/jobs/tick";
  Deployment d;
  d.put_schedules.push_back({kJob, "{}", kNow});
  ASSERT_THAT(store_->ApplyDeployment(d), IsOk());
  PubsubMessage tick = Msg("tick");
  EXPECT_THAT(store_->FireSchedule(kJob, kNow, kNow + 60'000, kTopic, &tick, kNow), IsOkAndHolds(true));
  EXPECT_THAT(store_->FireSchedule(kJob, kNow, kNow + 60'000, kTopic, &tick, kNow), IsOkAndHolds(false));
  EXPECT_THAT(store_->FireSchedule(kJob, kNow - 60'000, kNow, kTopic, &tick, kNow), IsOkAndHolds(false));
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("tick"));
  auto schedules = store_->ListSchedules();
  ASSERT_THAT(*schedules, SizeIs(1));
  EXPECT_EQ((*schedules)[0].last_fired_ms, kNow);
  EXPECT_EQ((*schedules)[0].next_fire_ms, kNow + 60'000);
  // A publish that fails (its topic is gone) fires nothing: the tick stays to fire.
  EXPECT_THAT(store_->FireSchedule(kJob, kNow + 60'000, kNow + 120'000, "projects/p/topics/gone", &tick, kNow),
              StatusIs(StatusCode::kNotFound));
  EXPECT_EQ((*store_->ListSchedules())[0].last_fired_ms, kNow);
  EXPECT_THAT(store_->FireSchedule("projects/p/locations/r/jobs/none", kNow, kNow, kTopic, &tick, kNow),
              StatusIs(StatusCode::kNotFound));

  // Paused, a schedule keeps its pause and next tick across a redeploy of its spec.
  ASSERT_THAT(store_->SetSchedulePaused(kJob, true, -1), IsOk());
  d.put_schedules = {{kJob, R"({"schedule":"* * * * *"})", kNow + 999}};
  ASSERT_THAT(store_->ApplyDeployment(d), IsOk());
  schedules = store_->ListSchedules();
  EXPECT_TRUE((*schedules)[0].paused);
  EXPECT_EQ((*schedules)[0].next_fire_ms, -1);
  EXPECT_EQ((*schedules)[0].spec, R"({"schedule":"* * * * *"})");
}

TEST_P(StoreContractTest, BucketEventsAndTheirObjectsAreRecordedTogether) {
  CreateTopicAndSub();
  std::vector<BucketObjectChange> put = {{"a.txt", R"({"name":"a.txt"})"}, {"", "/srv/b1"}};
  // The events' topic is missing: neither the events nor the objects they describe are kept.
  EXPECT_THAT(store_->RecordBucketEvents("b1", put, "projects/p/topics/gone", {Msg("finalize")}, kNow),
              StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(*store_->BucketObjects("b1"), SizeIs(0));

  ASSERT_THAT(store_->RecordBucketEvents("b1", put, kTopic, {Msg("finalize")}, kNow), IsOk());
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("finalize"));
  auto objects = store_->BucketObjects("b1");
  ASSERT_THAT(*objects, SizeIs(2));
  EXPECT_EQ(objects->at("a.txt"), R"({"name":"a.txt"})");
  ASSERT_THAT(store_->RecordBucketEvents("b1", {{"a.txt", std::nullopt}}, kTopic, {}, kNow), IsOk());
  EXPECT_THAT(*store_->BucketObjects("b1"), SizeIs(1));
  EXPECT_THAT(*store_->BucketObjects("b2"), SizeIs(0));
}

TEST_P(StoreContractTest, AnObjectUpdateSeesWhatWasStoredAndRecordsWhatItDecides) {
  CreateTopicAndSub();
  EXPECT_THAT(store_->BucketObject("b1", "a.txt"), IsOkAndHolds(std::nullopt));
  auto raise_once = [](std::optional<std::string> const& stored) {
    BucketObjectUpdate update;
    if (!stored) update = {{{"a.txt", "v1"}}, {Msg("finalize")}};
    return update;
  };
  ASSERT_THAT(store_->UpdateBucketObject("b1", "a.txt", kTopic, raise_once, kNow), IsOk());
  ASSERT_THAT(store_->UpdateBucketObject("b1", "a.txt", kTopic, raise_once, kNow), IsOk());  // seen: nothing
  EXPECT_THAT(store_->BucketObject("b1", "a.txt"), IsOkAndHolds(std::optional<std::string>("v1")));
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("finalize"));
  // A decision that fails to publish (no such topic) records nothing.
  auto overwrite = [](std::optional<std::string> const&) {
    return BucketObjectUpdate{{{"a.txt", "v2"}}, {Msg("finalize v2")}};
  };
  EXPECT_THAT(store_->UpdateBucketObject("b1", "a.txt", "projects/p/topics/gone", overwrite, kNow),
              StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(store_->BucketObject("b1", "a.txt"), IsOkAndHolds(std::optional<std::string>("v1")));
  auto remove = [](std::optional<std::string> const& stored) {
    BucketObjectUpdate update;
    if (stored) update = {{{"a.txt", std::nullopt}}, {Msg("delete")}};
    return update;
  };
  ASSERT_THAT(store_->UpdateBucketObject("b1", "a.txt", kTopic, remove, kNow), IsOk());
  EXPECT_THAT(store_->BucketObject("b1", "a.txt"), IsOkAndHolds(std::nullopt));
}

// Two nodes that see one new file at once (an upload through one, the watch on the other) raise its event once.
TEST_P(StoreContractTest, ConcurrentUpdatesOfOneObjectTakeTurns) {
  CreateTopicAndSub();
  constexpr int kThreads = 4, kFiles = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int f = 0; f < kFiles; ++f) {
        std::string name = "f" + std::to_string(f);
        auto once = [&](std::optional<std::string> const& stored) {
          BucketObjectUpdate update;
          if (!stored) update = {{{name, "v"}}, {Msg(name)}};
          return update;
        };
        EXPECT_THAT(store_->UpdateBucketObject("b1", name, kTopic, once, kNow), IsOk());
      }
    });
  }
  for (auto& t : threads) t.join();
  auto leased = store_->Lease(kSub, 1000, kNow);
  ASSERT_THAT(leased, IsOk());
  EXPECT_THAT(leased->messages, SizeIs(kFiles));
}

TEST_P(StoreContractTest, ANodesReportLastsUntilItRunsOut) {
  ASSERT_THAT(store_->ReportNode("a", R"({"v":1})", kNow + 10'000), IsOk());
  ASSERT_THAT(store_->ReportNode("b", R"({"v":2})", kNow + 5'000), IsOk());
  ASSERT_THAT(store_->ReportNode("a", R"({"v":3})", kNow + 20'000), IsOk());  // replaces a's last
  auto live = store_->LiveNodes(kNow);
  ASSERT_THAT(live, IsOk());
  ASSERT_THAT(*live, SizeIs(2));
  EXPECT_EQ((*live)[0].node, "a");
  EXPECT_EQ((*live)[0].status, R"({"v":3})");
  live = store_->LiveNodes(kNow + 6'000);  // b stopped reporting
  ASSERT_THAT(live, IsOk());
  ASSERT_THAT(*live, SizeIs(1));
  EXPECT_EQ((*live)[0].node, "a");
}

TEST_P(StoreContractTest, SlotsOfASharedLimitAreTakenOneEachUntilReleasedOrRunOut) {
  EXPECT_THAT(store_->ClaimOne("run f #", 2, "a call1", kNow, kNow + 10'000),
              IsOkAndHolds(std::optional<std::string>("run f #0")));
  EXPECT_THAT(store_->ClaimOne("run f #", 2, "b call2", kNow, kNow + 10'000),
              IsOkAndHolds(std::optional<std::string>("run f #1")));
  EXPECT_THAT(store_->ClaimOne("run f #", 2, "a call3", kNow, kNow + 10'000), IsOkAndHolds(std::nullopt));
  ASSERT_THAT(store_->Release("run f #0", "a call1"), IsOk());
  EXPECT_THAT(store_->ClaimOne("run f #", 2, "a call3", kNow, kNow + 10'000),
              IsOkAndHolds(std::optional<std::string>("run f #0")));
  // b's node died: its slot runs out.
  EXPECT_THAT(store_->ClaimOne("run f #", 2, "c call4", kNow + 10'001, kNow + 20'000),
              IsOkAndHolds(std::optional<std::string>("run f #0")));
}

// Calls on several nodes at once never hold more slots than the limit.
TEST_P(StoreContractTest, ConcurrentTakersOfSlotsNeverExceedTheLimit) {
  constexpr int kSlots = 3, kThreads = 6;
  std::atomic<int> held{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string holder = "node" + std::to_string(t);
      for (int round = 0; round < 15; ++round) {
        auto slot = store_->ClaimOne("run g #", kSlots, holder, kNow, kNow + 60'000);
        ASSERT_THAT(slot, IsOk());
        if (!*slot) continue;
        int now = ++held;
        for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
        }
        --held;
        ASSERT_THAT(store_->Release(**slot, holder), IsOk());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), kSlots);
  EXPECT_GE(most.load(), 1);
}

TEST_P(StoreContractTest, AClaimIsOneNodesUntilItIsReleasedOrRunsOut) {
  EXPECT_THAT(store_->Claim("deliver f", "a", kNow, kNow + 10'000), IsOkAndHolds(true));
  EXPECT_THAT(store_->Claim("deliver f", "b", kNow + 1'000, kNow + 11'000), IsOkAndHolds(false));
  EXPECT_THAT(store_->Claim("deliver g", "b", kNow + 1'000, kNow + 11'000), IsOkAndHolds(true));
  EXPECT_THAT(store_->Claim("deliver f", "a", kNow + 5'000, kNow + 15'000), IsOkAndHolds(true));  // renewed
  EXPECT_THAT(store_->Claim("deliver f", "b", kNow + 14'000, kNow + 24'000), IsOkAndHolds(false));
  // a stopped renewing: its claim runs out, and b takes it.
  EXPECT_THAT(store_->Claim("deliver f", "b", kNow + 15'001, kNow + 25'000), IsOkAndHolds(true));
  EXPECT_THAT(store_->Claim("deliver f", "a", kNow + 16'000, kNow + 26'000), IsOkAndHolds(false));
  // Only its holder lets it go.
  ASSERT_THAT(store_->Release("deliver f", "a"), IsOk());
  EXPECT_THAT(store_->Claim("deliver f", "a", kNow + 17'000, kNow + 27'000), IsOkAndHolds(false));
  ASSERT_THAT(store_->Release("deliver f", "b"), IsOk());
  EXPECT_THAT(store_->Claim("deliver f", "a", kNow + 17'000, kNow + 27'000), IsOkAndHolds(true));
}

TEST_P(StoreContractTest, PeekReadsWhatASubscriptionHoldsWithoutLeasing) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("a"), Msg("b"), Msg("c")}, kNow), IsOk());
  auto leased = store_->Lease(kSub, 1, kNow);
  ASSERT_THAT(leased, IsOk());
  ASSERT_THAT(leased->messages, SizeIs(1));
  auto peeked = store_->Peek(kSub, 0, 10);
  ASSERT_THAT(peeked, IsOk());
  ASSERT_THAT(*peeked, SizeIs(3));
  EXPECT_EQ((*peeked)[0].message.data, "a");
  EXPECT_TRUE((*peeked)[0].leased);
  EXPECT_EQ((*peeked)[0].attempts, 1);
  EXPECT_FALSE((*peeked)[1].leased);
  EXPECT_EQ((*peeked)[1].attempts, 0);
  // Pages: after the first message's id, at most one.
  auto page = store_->Peek(kSub, std::stoll((*peeked)[0].message.message_id), 1);
  ASSERT_THAT(page, IsOk());
  ASSERT_THAT(*page, SizeIs(1));
  EXPECT_EQ((*page)[0].message.data, "b");
  // Nothing was leased by peeking: the two others are still there to lease, on their first attempt.
  auto rest = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(rest, IsOk());
  EXPECT_THAT(Data(rest->messages), ElementsAre("b", "c"));
  EXPECT_EQ(rest->messages[0].attempt, 1);
  EXPECT_EQ(store_->Peek("projects/p/subscriptions/nope", 0, 10).status().code(), StatusCode::kNotFound);
}

TEST_P(StoreContractTest, MovingMessagesRepublishesAndTakesThemOffInOneStep) {
  CreateTopicAndSub();
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kSub2, kTopic)), IsOk());
  ASSERT_THAT(store_->CreateTopic({.name = kDlt}), IsOk());
  ASSERT_THAT(store_->CreateSubscription(MakeSub(kDltSub, kDlt)), IsOk());
  auto ids = store_->Publish(kDlt, {Msg("x"), Msg("y"), Msg("z")}, kNow);
  ASSERT_THAT(ids, IsOk());
  auto rewrite = [](PubsubMessage m) {
    m.attributes["moved"] = "yes";
    return m;
  };
  // x and z go back to kSub (alone, not to kSub2 on the same topic); an unknown id and a repeated one are skipped.
  auto moved = store_->MoveMessages(kDltSub, {(*ids)[0], (*ids)[2], (*ids)[0], "999999", "junk"}, kSub, rewrite,
                                    kNow + 1000);
  ASSERT_THAT(moved, IsOk());
  EXPECT_THAT(*moved, ElementsAre((*ids)[0], (*ids)[2]));
  auto back = store_->Lease(kSub, 10, kNow + 2000);
  ASSERT_THAT(back, IsOk());
  EXPECT_THAT(Data(back->messages), ElementsAre("x", "z"));
  EXPECT_EQ(back->messages[0].message.attributes.at("moved"), "yes");
  EXPECT_NE(back->messages[0].message.message_id, (*ids)[0]);  // a new message
  EXPECT_THAT(store_->Peek(kSub2, 0, 10), IsOkAndHolds(IsEmpty()));
  auto left = store_->Peek(kDltSub, 0, 10);
  ASSERT_THAT(left, IsOk());
  ASSERT_THAT(*left, SizeIs(1));
  EXPECT_EQ((*left)[0].message.data, "y");
  // Moved again: nothing, it is no longer held. Purged (nowhere to go): gone, and published nowhere.
  EXPECT_THAT(store_->MoveMessages(kDltSub, {(*ids)[0]}, kSub, rewrite, kNow), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(store_->MoveMessages(kDltSub, {(*ids)[1]}, "", nullptr, kNow), IsOkAndHolds(ElementsAre((*ids)[1])));
  EXPECT_THAT(store_->Peek(kDltSub, 0, 10), IsOkAndHolds(IsEmpty()));
  // It survives a reopen (committed), and a missing destination changes nothing.
  Open();
  EXPECT_EQ(store_->MoveMessages(kSub, {back->messages[0].message.message_id}, "projects/p/subscriptions/gone",
                                 rewrite, kNow)
                .status()
                .code(),
            StatusCode::kNotFound);
  auto still = store_->Peek(kSub, 0, 10);
  ASSERT_THAT(still, IsOk());
  EXPECT_THAT(*still, SizeIs(2));
}

TEST_P(StoreContractTest, RenewingClaimsKeepsTheOnesStillHeldAndNamesTheLost) {
  ASSERT_THAT(store_->Claim("run f #0", "a", kNow, kNow + 10'000), IsOkAndHolds(true));
  ASSERT_THAT(store_->Claim("run f #1", "a", kNow, kNow + 10'000), IsOkAndHolds(true));
  // #1 runs out and b takes it; #0 is renewed in time.
  ASSERT_THAT(store_->Claim("run f #1", "b", kNow + 10'001, kNow + 20'000), IsOkAndHolds(true));
  EXPECT_THAT(store_->RenewClaims({"run f #0", "run f #1"}, "a", kNow + 9'000, kNow + 30'000),
              IsOkAndHolds(ElementsAre("run f #1")));
  EXPECT_THAT(store_->Claim("run f #0", "b", kNow + 25'000, kNow + 35'000), IsOkAndHolds(false));  // renewed
  EXPECT_THAT(store_->Claim("run f #1", "a", kNow + 15'000, kNow + 35'000), IsOkAndHolds(false));  // still b's
  EXPECT_THAT(store_->RenewClaims({}, "a", kNow, kNow + 10'000), IsOkAndHolds(IsEmpty()));
  // Counting by prefix: "run f #" holds two; at kNow + 30'001 both have run out.
  ASSERT_THAT(store_->Claim("run fx #0", "a", kNow, kNow + 30'000), IsOk());
  EXPECT_THAT(store_->CountClaims("run f #", kNow + 10'000), IsOkAndHolds(2));
  EXPECT_THAT(store_->CountClaims("run f #", kNow + 30'001), IsOkAndHolds(0));
  EXPECT_THAT(store_->CountClaims("run g #", kNow), IsOkAndHolds(0));
}

// PostgreSQL only: message bodies are dropped by partition, and only partitions nothing refers to.
TEST_P(StoreContractTest, PostgresDropsOnlyPartitionsNothingRefersTo) {
  if (GetParam() != Backend::kPostgres) GTEST_SKIP() << "partitions are PostgreSQL's";
  auto db = PgConn::Open(server_ + " dbname=" + database_);
  ASSERT_THAT(db, IsOk());
  auto partitions = [&] {
    std::vector<int64_t> out;
    auto rows = (*db)->Query("SELECT n FROM message_partitions ORDER BY n");
    for (int i = 0; rows.ok() && i < rows->size(); ++i) out.push_back(rows->Int(i, 0));
    return out;
  };
  CreateTopicAndSub();
  ASSERT_THAT(store_->Publish(kTopic, {Msg("kept")}, kNow), IsOk());  // id 1, in partition 0, never acked
  // Ids jump ahead: the next publish lands in partition 3 and makes partitions up to it (and one more).
  ASSERT_THAT((*db)->Exec("SELECT setval('message_ids', 3 * 1048576)"), IsOk());
  ASSERT_THAT(store_->Publish(kTopic, {Msg("new")}, kNow), IsOk());
  auto before = partitions();
  ASSERT_GE(before.size(), 4u);
  EXPECT_EQ(before.front(), 0);
  // Partition 0 holds an unacknowledged message: nothing goes.
  ASSERT_THAT(store_->Maintain(kNow, true), IsOk());
  EXPECT_EQ(partitions(), before);
  // Once it is acknowledged, partitions 0 to 2 go; the one in use stays, and so does its message.
  auto leased = store_->Lease(kSub, 10, kNow);
  ASSERT_THAT(leased->messages, SizeIs(2));
  ASSERT_THAT(store_->Acknowledge(kSub, {leased->messages[0].ack_id}, kNow), IsOk());
  ASSERT_THAT(store_->ModifyAckDeadline(kSub, {leased->messages[1].ack_id}, 0, kNow), IsOk());
  ASSERT_THAT(store_->Maintain(kNow, true), IsOk());
  auto after = partitions();
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.front(), 3);
  EXPECT_THAT(Data(store_->Lease(kSub, 10, kNow)->messages), ElementsAre("new"));
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest, ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         BackendName);

TEST(AckIdTest, RoundTripsAndRejectsGarbage) {
  AckRef ref{12, 345, 6};
  auto decoded = DecodeAckId(EncodeAckId(ref));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->subscription_id, 12);
  EXPECT_EQ(decoded->message_id, 345);
  EXPECT_EQ(decoded->attempt, 6);
  EXPECT_EQ(decoded->seeks, 0);
  EXPECT_EQ(EncodeAckId(ref), "12-345-6");  // ack ids from before any seek keep the form they always had
  auto after_seeks = DecodeAckId(EncodeAckId({12, 345, 6, 3}));
  ASSERT_TRUE(after_seeks);
  EXPECT_EQ(after_seeks->attempt, 6);
  EXPECT_EQ(after_seeks->seeks, 3);
  EXPECT_FALSE(DecodeAckId("garbage"));
  EXPECT_FALSE(DecodeAckId("1-2"));
  EXPECT_FALSE(DecodeAckId("1-2-3-4-5"));
  EXPECT_FALSE(DecodeAckId("1-2-3-0"));
  EXPECT_FALSE(DecodeAckId("1-2-3-"));
  EXPECT_FALSE(DecodeAckId("1--2-3"));
  EXPECT_FALSE(DecodeAckId(""));
}

}  // namespace
}  // namespace ferry
