// A Broker on a real SQLite store in a temporary directory (no fsync: the data is thrown away), with a topic and a
// subscription for fuzz inputs to name, for the fuzz targets that drive the APIs. Pulls never wait. Every
// `kRenewEvery` inputs the store starts afresh, so millions of publishes do not fill the disk.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "broker/broker.h"
#include "common/clock.h"
#include "store/store.h"

namespace ferry::fuzzing {

class BrokerFixture {
 public:
  static constexpr int kRenewEvery = 20000;

  BrokerFixture() { Open(); }
  ~BrokerFixture() { Close(); }

  // The broker for the next input.
  Broker& Next() {
    if (++inputs_ % kRenewEvery == 0) {
      Close();
      Open();
    }
    return *broker_;
  }

 private:
  void Open() {
    char tmpl[] = "/tmp/ferry-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) Fail("mkdtemp", UnavailableError(tmpl));
    dir_ = tmpl;
    auto store = MakeSqliteStore({.data_dir = dir_, .sync = false});
    if (!store.ok()) Fail("store", store.status());
    store_ = *std::move(store);
    broker_ = std::make_unique<Broker>(*store_, clock_,
                                       BrokerOptions{.pull_wait = std::chrono::milliseconds(0),
                                                     .maintenance_interval = std::chrono::milliseconds(0)});
    Topic topic;
    topic.name = "projects/p/topics/top";
    if (auto created = broker_->CreateTopic(topic); !created.ok()) Fail("topic", created.status());
    Subscription sub;
    sub.name = "projects/p/subscriptions/sub";
    sub.topic = topic.name;
    if (auto created = broker_->CreateSubscription(sub); !created.ok()) Fail("subscription", created.status());
  }

  [[noreturn]] static void Fail(char const* what, Status const& status) {
    std::fprintf(stderr, "fuzz fixture: %s: %s\n", what, status.message().c_str());
    std::abort();
  }

  void Close() {
    broker_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  SystemClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
  long inputs_ = 0;
};

}  // namespace ferry::fuzzing
