#include "api/grpc/streaming_pull.h"

#include <algorithm>
#include <thread>

#include "common/latency_stages.h"
#include "model/resources.h"

namespace ferry {

namespace pb = google::pubsub::v1;

void SetTimestamp(int64_t ms, google::protobuf::Timestamp* out) {
  out->set_seconds(ms / 1000);
  out->set_nanos(static_cast<int32_t>((ms % 1000) * 1'000'000));
}

namespace {

void ToProto(PubsubMessage const& m, pb::PubsubMessage* out) {
  out->set_data(m.data);
  for (auto const& [k, v] : m.attributes) {
    auto* entry = out->add_attributes();
    entry->set_key(k);
    entry->set_value(v);
  }
  out->set_message_id(m.message_id);
  SetTimestamp(m.publish_time_ms, out->mutable_publish_time());
  out->set_ordering_key(m.ordering_key);
}

std::vector<std::string> Strings(google::protobuf::RepeatedPtrField<std::string> const& list) {
  return {list.begin(), list.end()};
}

template <typename Confirmation>
void Confirm(std::vector<std::string> const& ids, std::vector<std::string> const& invalid, Confirmation* out) {
  for (auto const& id : ids) {
    if (std::find(invalid.begin(), invalid.end(), id) == invalid.end()) {
      out->add_ack_ids(id);
    } else {
      out->add_invalid_ack_ids(id);
    }
  }
}

}  // namespace

void ToProto(ReceivedMessage const& r, pb::ReceivedMessage* out) {
  out->set_ack_id(r.ack_id);
  ToProto(r.message, out->mutable_message());
  if (r.delivery_attempt > 0) out->set_delivery_attempt(r.delivery_attempt);
}

// ---- StreamFlowControl ----

bool StreamFlowControl::Full() const {
  return (max_messages_ > 0 && static_cast<int64_t>(leases_.size()) >= max_messages_) ||
         (max_bytes_ > 0 && bytes_ >= max_bytes_);
}

int StreamFlowControl::Room(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (Full()) DropExpired();
  if (!closed_ && Full()) {
    // Room comes from a settle (notified) or a lease running out (its deadline, on the clock).
    auto until = clock_.SteadyNow() + wait;
    while (!closed_ && Full() && clock_.SteadyNow() < until) {
      auto next_expiry = until;
      for (auto const& [id, lease] : leases_) next_expiry = std::min(next_expiry, lease.deadline);
      clock_.WaitUntil(cv_, lock, next_expiry);
      DropExpired();
    }
  }
  if (closed_ || Full()) return 0;
  int64_t room = max_messages_ > 0 ? max_messages_ - static_cast<int64_t>(leases_.size()) : kMaxPullMessages;
  if (max_bytes_ > 0) {
    // Sizes are known only once leased: estimate from the messages this stream has sent (1 KiB before the
    // first). Pub/Sub too may exceed the byte limit by part of a batch.
    int64_t average = sent_count_ > 0 ? std::max<int64_t>(1, sent_bytes_ / sent_count_) : 1024;
    room = std::min(room, std::max<int64_t>(1, (max_bytes_ - bytes_ + average - 1) / average));
  }
  return static_cast<int>(std::min<int64_t>(room, kMaxPullMessages));
}

void StreamFlowControl::Add(std::string const& ack_id, int64_t bytes, SteadyPoint deadline) {
  std::lock_guard lock(mu_);
  leases_[ack_id] = {bytes, deadline};
  bytes_ += bytes;
  sent_bytes_ += bytes;
  ++sent_count_;
}

bool StreamFlowControl::Settle(std::vector<std::string> const& ack_ids) {
  bool any = false;
  bool room = false;  // it was full and is not now: the sender waiting for room (if any) may go on
  {
    std::lock_guard lock(mu_);
    bool const was_full = Full();
    for (auto const& id : ack_ids) {
      auto it = leases_.find(id);
      if (it == leases_.end()) continue;
      bytes_ -= it->second.bytes;
      leases_.erase(it);
      any = true;
    }
    room = any && was_full && !Full();
  }
  // Only then: a wake per settled message cost a futex call each and a scan of the leases by the woken sender.
  if (room) cv_.notify_all();
  return any;
}

void StreamFlowControl::Extend(std::vector<std::string> const& ack_ids, SteadyPoint deadline) {
  std::lock_guard lock(mu_);
  for (auto const& id : ack_ids) {
    if (auto it = leases_.find(id); it != leases_.end()) it->second.deadline = deadline;
  }
}

void StreamFlowControl::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool StreamFlowControl::closed() {
  std::lock_guard lock(mu_);
  return closed_;
}

std::vector<std::string> StreamFlowControl::AckIds() {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  ids.reserve(leases_.size());
  for (auto const& [id, lease] : leases_) ids.push_back(id);
  return ids;
}

int64_t StreamFlowControl::outstanding() {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(leases_.size());
}

void StreamFlowControl::DropExpired() {
  auto now = clock_.SteadyNow();
  absl::erase_if(leases_, [&](auto const& entry) {
    if (entry.second.deadline > now) return false;
    bytes_ -= entry.second.bytes;
    return true;
  });
}

// ---- LeaseRegistry ----

void LeaseRegistry::Add(std::vector<std::string> const& ack_ids, std::shared_ptr<StreamFlowControl> const& stream) {
  std::lock_guard lock(mu_);
  for (auto const& id : ack_ids) index_[id] = stream;
}

namespace {

// The ack ids of `ack_ids` found in `index`, by the stream that handed them out (a client's batch of acks mostly
// names one or a few streams), erased from `index` when `erase`.
std::vector<std::pair<std::shared_ptr<StreamFlowControl>, std::vector<std::string>>> ByStream(
    absl::flat_hash_map<std::string, std::weak_ptr<StreamFlowControl>>& index, std::vector<std::string> const& ack_ids,
    bool erase) {
  std::vector<std::pair<std::shared_ptr<StreamFlowControl>, std::vector<std::string>>> out;
  StreamFlowControl const* last = nullptr;
  for (auto const& id : ack_ids) {
    auto it = index.find(id);
    if (it == index.end()) continue;
    if (auto stream = it->second.lock()) {
      if (stream.get() != last) {
        auto same = std::find_if(out.begin(), out.end(), [&](auto const& e) { return e.first == stream; });
        if (same == out.end()) {
          out.emplace_back(stream, std::vector<std::string>{});
        } else if (same != out.end() - 1) {
          std::swap(*same, out.back());  // the stream of the last id goes last, where the next id looks first
        }
        last = stream.get();
      }
      out.back().second.push_back(id);
    }
    if (erase) index.erase(it);
  }
  return out;
}

}  // namespace

void LeaseRegistry::Settle(std::vector<std::string> const& ack_ids) {
  std::vector<std::pair<std::shared_ptr<StreamFlowControl>, std::vector<std::string>>> found;
  {
    std::lock_guard lock(mu_);
    found = ByStream(index_, ack_ids, /*erase=*/true);
  }
  for (auto const& [stream, ids] : found) stream->Settle(ids);
}

void LeaseRegistry::Extend(std::vector<std::string> const& ack_ids, int seconds) {
  auto deadline = clock_.SteadyNow() + std::chrono::seconds(seconds);
  std::vector<std::pair<std::shared_ptr<StreamFlowControl>, std::vector<std::string>>> found;
  {
    std::lock_guard lock(mu_);
    found = ByStream(index_, ack_ids, /*erase=*/false);
  }
  for (auto const& [stream, ids] : found) stream->Extend(ids, deadline);
}

void LeaseRegistry::Forget(std::vector<std::string> const& ack_ids) {
  std::lock_guard lock(mu_);
  for (auto const& id : ack_ids) index_.erase(id);
}

// ---- StreamingPullSession ----

StreamingPullSession::StreamingPullSession(Broker& broker, Clock const& clock, LeaseRegistry& leases,
                                           std::atomic<bool> const& stopping, Options options)
    : broker_(broker), clock_(clock), leases_(leases), stopping_(stopping), options_(options) {}

Status StreamingPullSession::Run(PullStream& stream, pb::StreamingPullRequest const& first) {
  std::string const subscription = first.subscription();
  int const deadline_seconds = first.stream_ack_deadline_seconds();
  if (deadline_seconds < kMinAckDeadlineSeconds || deadline_seconds > kMaxAckDeadlineSeconds) {
    return InvalidArgumentError("Invalid stream_ack_deadline_seconds: " + std::to_string(deadline_seconds) +
                                " (must be between 10 and 600 seconds)");
  }
  auto sub = broker_.GetSubscription(subscription);
  if (!sub.ok()) return sub.status();
  bool const exactly_once = sub->enable_exactly_once_delivery;

  auto flow = std::make_shared<StreamFlowControl>(clock_, first.max_outstanding_messages(),
                                                  first.max_outstanding_bytes());
  std::mutex write_mu;  // the reader answers acknowledgement confirmations while the loop below sends messages
  auto write = [&](pb::StreamingPullResponse const& response) {
    std::lock_guard lock(write_mu);
    return stream.Write(response);
  };
  // Messages leased for this stream that did not reach it go back now, not at their deadline, and as the same
  // delivery attempt: the next subscriber gets them with no backoff.
  auto return_unsent = [&](std::vector<ReceivedMessage> const& messages) {
    std::vector<std::string> ids;
    for (auto const& r : messages) ids.push_back(r.ack_id);
    leases_.Settle(ids);
    (void)broker_.ReturnUnsent(subscription, ids);
  };

  // Acks and deadline changes on the stream. With exactly-once delivery each is confirmed on the stream.
  auto settle = [&](pb::StreamingPullRequest const& req) {
    pb::StreamingPullResponse confirmation;
    if (req.ack_ids_size() > 0) {
      auto ids = Strings(req.ack_ids());
      std::vector<std::string> invalid;
      (void)broker_.Acknowledge(subscription, ids, &invalid);
      leases_.Settle(ids);
      if (exactly_once) Confirm(ids, invalid, confirmation.mutable_acknowledge_confirmation());
    }
    if (req.modify_deadline_ack_ids_size() != req.modify_deadline_seconds_size()) {
      return InvalidArgumentError("modify_deadline_ack_ids and modify_deadline_seconds differ in length");
    }
    // Runs of equal deadlines go to the broker together.
    for (int i = 0; i < req.modify_deadline_ack_ids_size();) {
      int seconds = req.modify_deadline_seconds(i);
      std::vector<std::string> ids;
      for (; i < req.modify_deadline_ack_ids_size() && req.modify_deadline_seconds(i) == seconds; ++i) {
        ids.push_back(req.modify_deadline_ack_ids(i));
      }
      std::vector<std::string> invalid;
      Status st = broker_.ModifyAckDeadline(subscription, ids, seconds, &invalid);
      if (st.code() == StatusCode::kInvalidArgument && invalid.empty()) return st;
      if (seconds == 0) {
        leases_.Settle(ids);
      } else {
        leases_.Extend(ids, seconds);
      }
      if (exactly_once) Confirm(ids, invalid, confirmation.mutable_modify_ack_deadline_confirmation());
    }
    if (exactly_once &&
        (confirmation.has_acknowledge_confirmation() || confirmation.has_modify_ack_deadline_confirmation())) {
      write(confirmation);
    }
    return OkStatus();
  };

  // Once the client has gone (or the stream failed), a wait for messages ends at once rather than at its poll.
  std::atomic<bool> ended{false};
  auto end = [&] {
    flow->Close();
    ended = true;
    broker_.WakePulls();
  };
  Status failure;
  std::mutex failure_mu;
  auto fail = [&](Status st) {
    {
      std::lock_guard lock(failure_mu);
      if (failure.ok()) failure = std::move(st);
    }
    end();
  };
  if (Status st = settle(first); !st.ok()) return st;

  std::thread reader([&] {
    pb::StreamingPullRequest req;
    while (stream.Read(&req)) {
      if (req.max_outstanding_messages() != 0 || req.max_outstanding_bytes() != 0) {
        fail(InvalidArgumentError("max_outstanding_messages and max_outstanding_bytes may only be set on the "
                                  "first request of a stream"));
        break;
      }
      if (Status st = settle(req); !st.ok()) {
        fail(std::move(st));
        break;
      }
    }
    end();
  });

  while (!stopping_ && !stream.Cancelled()) {
    int room = flow->Room(options_.poll);
    if (flow->closed()) break;
    if (room == 0) continue;
    auto pulled = broker_.Pull(subscription, {.max_messages = room, .wait = options_.poll,
                                              .ack_deadline_seconds = deadline_seconds, .cancelled = &ended});
    if (!pulled.ok()) {
      fail(pulled.status());
      break;
    }
    if (pulled->empty()) continue;
    if (flow->closed() || stream.Cancelled()) {
      return_unsent(*pulled);  // the client left while we waited for messages
      break;
    }
    pb::StreamingPullResponse response;
    auto deadline = clock_.SteadyNow() + std::chrono::seconds(deadline_seconds);
    std::vector<std::string> ids;
    ids.reserve(pulled->size());
    for (auto const& r : *pulled) {
      ToProto(r, response.add_received_messages());
      flow->Add(r.ack_id, static_cast<int64_t>(r.message.data.size()), deadline);
      ids.push_back(r.ack_id);
    }
    leases_.Add(ids, flow);
    auto* properties = response.mutable_subscription_properties();
    properties->set_exactly_once_delivery_enabled(exactly_once);
    properties->set_message_ordering_enabled(sub->enable_message_ordering);
    auto const write_start = latency::Now();
    bool written = write(response);
    latency::RecordSince(Stage::kDeliverWrite, write_start);
    if (latency::enabled()) {
      for (auto const& r : *pulled) latency::RecordDelivered(r.message.message_id);
    }
    if (!written) {
      return_unsent(*pulled);  // the client went away before they reached it
      break;
    }
  }
  flow->Close();
  stream.Cancel();  // unblocks the reader's Read
  reader.join();
  leases_.Forget(flow->AckIds());
  std::lock_guard lock(failure_mu);
  if (stopping_ && failure.ok()) return UnavailableError("The server is stopping");
  return failure;
}

}  // namespace ferry
