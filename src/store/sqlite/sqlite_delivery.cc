// The embedded store: publishing, and the delivery state machine (leases, acks, nacks, dead letters).
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <limits>

#include "common/latency_stages.h"
#include "common/status_macros.h"
#include "store/delivery_policy.h"

namespace ferry {

StatusOr<std::vector<std::string>> SqliteStore::Publish(std::string const& topic,
                                                        std::vector<PubsubMessage> const& messages, int64_t now_ms) {
  std::vector<std::string> ids;
  auto const started = latency::Now();
  auto st = Write([&](SqliteDb& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
    if (!topic_id) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(auto assigned, InsertMessages(db, *topic_id, messages, now_ms));
    published_topics_.push_back(topic);
    ids.clear();
    ids.reserve(assigned.size());
    for (int64_t id : assigned) ids.push_back(std::to_string(id));
    if (started != latency::Clock::time_point{}) {
      for (auto const& id : ids) latency::MarkPublished(id, started);  // before its commit can wake a pull
    }
    return OkStatus();
  });
  if (!st.ok()) return st;
  return ids;
}

StatusOr<LeaseResult> SqliteStore::Lease(std::string const& subscription, int max, int64_t now_ms,
                                         int ack_deadline_seconds, int64_t max_bytes) {
  LeaseResult result;
  auto st = Write([&](SqliteDb& db) -> Status {
    result = {};
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    auto const& spec = sub->spec;
    int deadline_seconds = ack_deadline_seconds > 0 ? ack_deadline_seconds : spec.ack_deadline_seconds;
    int64_t lease_until = now_ms + int64_t{deadline_seconds} * 1000;
    struct Candidate {
      int64_t msg_id;
      int attempts;
      PubsubMessage message;
    };
    FERRY_ASSIGN_OR_RETURN(auto expired, ExpireLeases(db, *sub, now_ms, /*retry=*/true));
    result.expired = expired.expired;
    result.dead_lettered = expired.dead_lettered;
    std::vector<int64_t> leased;
    // With message ordering, a key is held while any of its messages is leased or waiting out a backoff, and
    // its messages go out in publish order: one outstanding batch per key. (After ExpireLeases every leased row's
    // deadline is still ahead.)
    bool const ordered = spec.enable_message_ordering;
    int64_t bytes = 0;
    bool full = false;  // the byte budget is spent
    while (!full && static_cast<int>(result.messages.size()) < max) {
      FERRY_ASSIGN_OR_RETURN(
          auto sel, db.Prepare(ordered ? "SELECT d.msg_id, d.attempts, m.publish_time, m.data, m.attributes, "
                                         "m.ordering_key "
                                         "FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                                         "WHERE d.sub_id = ?1 AND d.leased = 0 AND d.visible_at <= ?2 AND "
                                         "(d.ordering_key = '' OR d.ordering_key NOT IN ("
                                         "SELECT ordering_key FROM deliveries INDEXED BY deliveries_leased_keys "
                                         "WHERE sub_id = ?1 AND leased = 1 AND ordering_key != '' UNION ALL "
                                         "SELECT ordering_key FROM deliveries WHERE sub_id = ?1 AND leased = 0 "
                                         "AND visible_at > ?2 AND ordering_key != '')) "
                                         "ORDER BY d.msg_id LIMIT ?3"
                                       : "SELECT d.msg_id, d.attempts, m.publish_time, m.data, m.attributes, "
                                         "m.ordering_key "
                                         "FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                                         "WHERE d.sub_id = ?1 AND d.leased = 0 AND d.visible_at <= ?2 "
                                         "ORDER BY d.visible_at, d.msg_id LIMIT ?3"));
      sel->Bind(1, sub->id).Bind(2, now_ms).Bind(3, max - static_cast<int>(result.messages.size()));
      std::vector<Candidate> candidates;
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
        if (!row) break;
        Candidate c{sel->Int(0), static_cast<int>(sel->Int(1)), {}};
        c.message.message_id = std::to_string(c.msg_id);
        c.message.publish_time_ms = sel->Int(2);
        c.message.data = sel->Text(3);
        FERRY_ASSIGN_OR_RETURN(c.message.attributes, DecodeAttributes(sel->Text(4)));
        c.message.ordering_key = sel->Text(5);
        candidates.push_back(std::move(c));
      }
      sel->Reset();
      if (candidates.empty()) break;
      for (auto& c : candidates) {
        int64_t size = static_cast<int64_t>(c.message.data.size() + c.message.ordering_key.size());
        for (auto const& [k, v] : c.message.attributes) size += static_cast<int64_t>(k.size() + v.size());
        if (!result.messages.empty() && bytes + size > max_bytes) {
          full = true;  // it and the rest stay as they are: not leased, no attempt counted
          break;
        }
        bytes += size;
        int attempt = c.attempts + 1;
        leased.push_back(c.msg_id);
        ReceivedMessage r;
        r.message = std::move(c.message);
        r.ack_id = EncodeAckId({sub->id, c.msg_id, attempt, sub->seeks});
        r.attempt = attempt;
        if (spec.dead_letter_policy) r.delivery_attempt = attempt;
        result.messages.push_back(std::move(r));
      }
      FERRY_RETURN_IF_ERROR(MarkLeased(db, sub->id, leased, lease_until));
      leased.clear();
    }
    return OkStatus();
  }, /*durable=*/false);
  if (!st.ok()) return st;
  return result;
}

StatusOr<AckResult> SqliteStore::Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                             int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  AckResult result;
  auto st = Write([&](SqliteDb& db) -> Status {
    result = {};
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    std::vector<int64_t> msg_ids;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      auto const& ref = refs[i];
      if (sub->spec.enable_exactly_once_delivery) {
        // Only the current, unexpired lease may acknowledge: then an acked message is never delivered again.
        FERRY_ASSIGN_OR_RETURN(bool current, IsCurrentLease(db, *sub, ref, now_ms));
        if (!current) {
          result.invalid_ack_ids.push_back(ack_ids[i]);
          continue;
        }
      } else if (sub->spec.enable_message_ordering) {
        // With ordering, a nack sends the later messages of its key again: their acks from before are void.
        FERRY_ASSIGN_OR_RETURN(bool current,
                               IsCurrentLease(db, *sub, ref, std::numeric_limits<int64_t>::min()));
        if (!current) continue;
      } else if (!IssuedBy(ref, sub->id, sub->seeks)) {
        continue;
      }
      // Elsewhere any attempt's ack id (since the last seek) acknowledges the message: delivery is at-least-once,
      // and a late ack after a redelivery still means the work was done.
      msg_ids.push_back(ref.message_id);
    }
    FERRY_ASSIGN_OR_RETURN(auto removed, RemoveDeliveries(db, *sub, msg_ids));
    result.acked = static_cast<int>(removed);
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

StatusOr<ModifyResult> SqliteStore::ModifyAckDeadline(std::string const& subscription,
                                                      std::vector<std::string> const& ack_ids,
                                                      int seconds, int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  return Modify(subscription, refs, seconds, nullptr, now_ms);
}

StatusOr<int> SqliteStore::ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                        int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  int returned = 0;
  auto st = Write([&](SqliteDb& db) -> Status {
    returned = 0;
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    // The lease's own attempt, still held: the lease is current, so taking its attempt back is exact.
    FERRY_ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE deliveries SET leased = 0, visible_at = ?4, "
                                               "attempts = attempts - 1 WHERE sub_id = ?1 AND msg_id = ?2 AND "
                                               "attempts = ?3 AND leased = 1"));
    for (auto const& ref : refs) {
      if (!IssuedBy(ref, sub->id, sub->seeks)) continue;
      held_extensions_.erase({sub->id, ref.message_id});
      FERRY_RETURN_IF_ERROR(up->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, ref.attempt).Bind(4, now_ms).Exec());
      if (db.Changes() > 0) lease_clock_.Erase(sub->id, ref.message_id);
      returned += db.Changes();
    }
    return OkStatus();
  }, /*durable=*/false);  // as a lease is: a crash before the next commit leaves it leased until its deadline
  if (!st.ok()) return st;
  return returned;
}

StatusOr<ModifyResult> SqliteStore::Nack(std::string const& subscription, std::string const& ack_id,
                                         std::string const& error, int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds({ack_id}));
  return Modify(subscription, refs, 0, &error, now_ms);
}

// Sets the current leases of `refs` to `seconds` from now, or nacks them (0), keeping `error` when given.
StatusOr<ModifyResult> SqliteStore::Modify(std::string const& subscription, std::vector<AckRef> const& refs,
                                           int seconds, std::string const* error, int64_t now_ms) {
  ModifyResult result;
  auto st = Write([&](SqliteDb& db) -> Status {
    result = {};
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    auto const& spec = sub->spec;
    for (auto const& ref : refs) {
      // Only the current lease may be changed: a stale ack id must not touch a redelivered message. Exactly-once
      // subscriptions also refuse an expired lease, and say so.
      bool const exactly_once = spec.enable_exactly_once_delivery;
      int64_t const held_past = exactly_once ? now_ms : std::numeric_limits<int64_t>::min();
      FERRY_ASSIGN_OR_RETURN(auto current, CurrentLease(db, *sub, ref, held_past));
      if (!current) {
        if (exactly_once) result.invalid_ack_ids.push_back(EncodeAckId(ref));
        continue;
      }
      std::pair<int64_t, int64_t> const key{sub->id, ref.message_id};
      if (seconds > 0) {
        int64_t const until = now_ms + int64_t{seconds} * 1000;
        // Later than the deadline written, an extension is held in memory (see held_extensions_); with ordering
        // the lease's SQL reads the deadlines of a key's messages, so they are written.
        if (until >= current->written && !spec.enable_message_ordering &&
            held_extensions_.size() < kMaxHeldExtensions) {
          held_extensions_[key] = {ref.attempt, until};
        } else {
          held_extensions_.erase(key);
          FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, until, true));
        }
        continue;
      }
      held_extensions_.erase(key);
      ++result.nacked;
      if (error != nullptr) {
        FERRY_ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE deliveries SET last_error = ?3 WHERE sub_id = ?1 AND "
                                                   "msg_id = ?2"));
        FERRY_RETURN_IF_ERROR(up->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, *error).Exec());
      }
      auto after = OnFailedAttempt(spec, ref.attempt, now_ms);
      if (after.dead_letter) {
        FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, *sub, ref.message_id, ref.attempt, now_ms));
        if (moved) {
          ++result.dead_lettered;
          continue;
        }
      }
      FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, after.retry_at_ms, false));
      if (spec.enable_message_ordering) {
        // A nack holds its key back: the later messages of the key that are out now come again after it.
        FERRY_ASSIGN_OR_RETURN(auto later, db.Prepare("UPDATE deliveries SET leased = 0, visible_at = ?3 WHERE "
                                                      "sub_id = ?1 AND msg_id > ?2 AND leased = 1 AND "
                                                      "ordering_key != '' AND ordering_key = (SELECT ordering_key "
                                                      "FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2)"));
        FERRY_RETURN_IF_ERROR(later->Bind(1, sub->id).Bind(2, ref.message_id).Bind(3, after.retry_at_ms).Exec());
      }
    }
    return OkStatus();
  }, /*durable=*/seconds == 0);  // an extension lost in a crash ends a lease early: the message comes again
  if (!st.ok()) return st;
  return result;
}

Status SqliteStore::ScanLeases(SqliteDb& db, int64_t sub_id) {
  lease_clock_.StartScan(sub_id);
  auto scan = [&]() -> Status {
    FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT msg_id, visible_at FROM deliveries WHERE sub_id = ?1 AND "
                                                "leased = 1"));
    sel->Bind(1, sub_id);
    while (true) {
      FERRY_ASSIGN_OR_RETURN(bool row, sel->Step());
      if (!row) break;
      lease_clock_.Set(sub_id, sel->Int(0), sel->Int(1));
    }
    sel->Reset();
    return OkStatus();
  };
  Status st = scan();
  if (!st.ok()) lease_clock_.Forget(sub_id);  // half a scan must not be trusted
  return st;
}

StatusOr<SqliteStore::Expired> SqliteStore::ExpireLeases(SqliteDb& db, SubRow const& sub, int64_t now_ms,
                                                         bool retry) {
  Expired out;
  if (lease_clock_.NeedsScan(sub.id, now_ms)) FERRY_RETURN_IF_ERROR(ScanLeases(db, sub.id));
  auto due = lease_clock_.TakeDue(sub.id, now_ms);
  if (due.empty()) return out;
  FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT visible_at, attempts FROM deliveries WHERE sub_id = ?1 AND "
                                              "msg_id = ?2 AND leased = 1"));
  for (int64_t msg_id : due) {
    sel->Bind(1, sub.id).Bind(2, msg_id);
    FERRY_ASSIGN_OR_RETURN(bool found, sel->Step());
    int64_t const deadline = found ? sel->Int(0) : 0;
    int const attempts = found ? static_cast<int>(sel->Int(1)) : 0;
    sel->Reset();
    if (!found) continue;  // acked, nacked or dropped since
    if (deadline > now_ms) {
      lease_clock_.Set(sub.id, msg_id, deadline);  // a later deadline was written
      continue;
    }
    // An extension held in memory may still hold it: then it is written (and clocked) now.
    FERRY_ASSIGN_OR_RETURN(bool held, WriteHeldExtension(db, sub.id, msg_id, attempts, now_ms));
    if (held) continue;
    // The lease ran out: that delivery failed.
    auto after = OnFailedAttempt(sub.spec, attempts, deadline);
    if (after.dead_letter) {
      FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, sub, msg_id, attempts, now_ms));
      if (moved) {
        ++out.dead_lettered;
        continue;
      }
    }
    if (!retry) {
      lease_clock_.Set(sub.id, msg_id, deadline);  // still due: the next lease counts it
      continue;
    }
    ++out.expired;
    // It waits among the rows to lease from when it may go again (its own deadline, without a backoff), so it
    // keeps its place; with ordering, a later time holds its key until then.
    FERRY_RETURN_IF_ERROR(SetVisibility(db, sub.id, msg_id, after.retry_at_ms, false));
  }
  return out;
}

StatusOr<MaintenanceResult> SqliteStore::Maintain(int64_t now_ms, bool apply_retention) {
  MaintenanceResult result;
  auto st = Write([&](SqliteDb& db) -> Status {
    result = {};
    // Extensions whose deadline has passed hold nothing any more (the row's own deadline was earlier).
    std::erase_if(held_extensions_, [&](auto const& e) { return e.second.until <= now_ms; });
    if (!all_subs_) {
      FERRY_ASSIGN_OR_RETURN(auto subs, db.Prepare("SELECT id, spec, seeks FROM subscriptions"));
      std::vector<SubRow> rows;
      while (true) {
        FERRY_ASSIGN_OR_RETURN(bool row, subs->Step());
        if (!row) break;
        FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(subs->Text(1)));
        rows.push_back({subs->Int(0), std::move(spec), subs->Int(2)});
      }
      subs->Reset();
      all_subs_ = std::move(rows);
    }
    for (auto const& sub : *all_subs_) {
      if (sub.spec.dead_letter_policy) {
        FERRY_ASSIGN_OR_RETURN(auto expired, ExpireLeases(db, sub, now_ms, /*retry=*/false));
        if (expired.dead_lettered > 0) result.dead_lettered.emplace_back(sub.spec.name, expired.dead_lettered);
      }
      if (!apply_retention) continue;
      FERRY_ASSIGN_OR_RETURN(int64_t dropped,
                             DropDeliveries(db, sub.id, now_ms - sub.spec.message_retention_ms));
      result.dropped_by_retention += dropped;
      FERRY_RETURN_IF_ERROR(DropAcked(db, sub.id, now_ms - sub.spec.message_retention_ms));
    }
    if (apply_retention) {
      FERRY_ASSIGN_OR_RETURN(auto expired, db.Prepare("SELECT id FROM snapshots WHERE expire <= ?1"));
      expired->Bind(1, now_ms);
      FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*expired));
      for (int64_t id : ids) FERRY_RETURN_IF_ERROR(DropSnapshot(db, id));
    }
    return OkStatus();
  });
  if (!st.ok()) return st;
  return result;
}

StatusOr<std::vector<HeldMessage>> SqliteStore::Peek(std::string const& subscription, int64_t after_id, int max) {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto find, reader->Prepare("SELECT id FROM subscriptions WHERE name = ?1"));
  find->Bind(1, subscription);
  FERRY_ASSIGN_OR_RETURN(bool found, find->Step());
  if (!found) return NotFoundError("Subscription does not exist");
  int64_t sub_id = find->Int(0);
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT d.msg_id, d.attempts, d.leased, m.publish_time, m.data, "
                                                  "m.attributes, m.ordering_key FROM deliveries d JOIN messages m ON "
                                                  "m.id = d.msg_id WHERE d.sub_id = ?1 AND d.msg_id > ?2 ORDER BY "
                                                  "d.msg_id LIMIT ?3"));
  st->Bind(1, sub_id).Bind(2, after_id).Bind(3, int64_t{max});
  std::vector<HeldMessage> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    HeldMessage held;
    held.message.message_id = std::to_string(st->Int(0));
    held.attempts = static_cast<int>(st->Int(1));
    held.leased = st->Int(2) != 0;
    held.message.publish_time_ms = st->Int(3);
    held.message.data = st->Text(4);
    FERRY_ASSIGN_OR_RETURN(held.message.attributes, DecodeAttributes(st->Text(5)));
    held.message.ordering_key = st->Text(6);
    out.push_back(std::move(held));
  }
  return out;
}

StatusOr<std::vector<std::string>> SqliteStore::MoveMessages(std::string const& subscription,
                                                             std::vector<std::string> const& message_ids,
                                                             std::string const& to_subscription,
                                                             MessageRewrite const& rewrite,
                                                             int64_t now_ms) {
  std::vector<std::string> taken;
  FERRY_RETURN_IF_ERROR(Write([&](SqliteDb& db) -> Status {
    taken.clear();
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    std::optional<SubRow> to;
    std::optional<int64_t> topic_id;
    if (!to_subscription.empty()) {
      FERRY_ASSIGN_OR_RETURN(to, FindSub(db, to_subscription));
      if (!to) return NotFoundError("Subscription does not exist");
      FERRY_ASSIGN_OR_RETURN(topic_id, FindTopicId(db, to->spec.topic));
      if (!topic_id) return NotFoundError("Topic not found");
    }
    FERRY_ASSIGN_OR_RETURN(auto held, db.Prepare("SELECT 1 FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2"));
    std::vector<int64_t> ids;
    std::vector<PubsubMessage> copies;
    for (auto const& text : message_ids) {
      auto decoded = DecodeMessageId(text);
      if (!decoded) continue;
      int64_t const id = *decoded;
      held->Bind(1, sub->id).Bind(2, id);
      FERRY_ASSIGN_OR_RETURN(bool holds, held->Step());
      held->Reset();
      if (!holds || std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
      ids.push_back(id);
      if (topic_id) {
        FERRY_ASSIGN_OR_RETURN(auto message, LoadMessage(db, id));
        copies.push_back(rewrite ? rewrite(std::move(message)) : std::move(message));
      }
    }
    if (topic_id && !copies.empty()) {
      FERRY_ASSIGN_OR_RETURN(auto published, InsertMessages(db, *topic_id, copies, now_ms, to->id));
      (void)published;
      published_topics_.push_back(to->spec.topic);
    }
    FERRY_ASSIGN_OR_RETURN(auto removed, RemoveDeliveries(db, *sub, ids));
    (void)removed;
    for (int64_t id : ids) taken.push_back(std::to_string(id));
    return OkStatus();
  }));
  return taken;
}

StatusOr<std::vector<SubscriptionStats>> SqliteStore::Stats() {
  auto reader = Read();
  FERRY_ASSIGN_OR_RETURN(auto st, reader->Prepare("SELECT s.name, COUNT(d.msg_id), MIN(d.publish_time) FROM "
                                                  "subscriptions s LEFT JOIN deliveries d ON d.sub_id = s.id "
                                                  "GROUP BY s.id ORDER BY s.name"));
  std::vector<SubscriptionStats> out;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back({st->Text(0), st->Int(1), st->IsNull(2) ? 0 : st->Int(2)});
  }
  return out;
}

void SqliteStore::SetPublishListener(std::function<void(std::string const& topic)> listener) {
  std::lock_guard lock(listener_mu_);
  publish_listener_ = std::move(listener);
}

}  // namespace ferry
