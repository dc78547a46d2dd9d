// The PostgreSQL store: publishing, and the delivery state machine (leases, acks, nacks, dead letters). Nodes
// lease from the same rows: a lease locks the rows it takes (FOR UPDATE SKIP LOCKED), so concurrent pulls on
// several nodes take different messages without waiting for each other, and a message is leased to one node.
#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <set>

#include "common/status_macros.h"
#include "store/delivery_policy.h"
#include "store/postgres/pg_store.h"
#include "store/stored_json.h"

namespace ferry {

StatusOr<std::vector<std::string>> PgStore::Publish(std::string const& topic,
                                                    std::vector<PubsubMessage> const& messages, int64_t now_ms) {
  std::vector<std::string> ids;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto topic_id, FindTopicId(db, topic));
    if (!topic_id) return NotFoundError("Topic not found");
    FERRY_ASSIGN_OR_RETURN(auto assigned, InsertMessages(db, *topic_id, topic, messages, now_ms));
    ids.clear();
    for (int64_t id : assigned) ids.push_back(std::to_string(id));
    return OkStatus();
  }));
  Notify(topic);  // this node's subscribers at once; other nodes' through NOTIFY
  return ids;
}

StatusOr<LeaseResult> PgStore::Lease(std::string const& subscription, int max, int64_t now_ms,
                                     int ack_deadline_seconds, int64_t max_bytes) {
  LeaseResult result;
  std::vector<std::string> dead_letter_topics;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    result = {};
    dead_letter_topics.clear();  // a transaction run again starts over
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    auto const& spec = sub->spec;
    int deadline_seconds = ack_deadline_seconds > 0 ? ack_deadline_seconds : spec.ack_deadline_seconds;
    int64_t lease_until = now_ms + int64_t{deadline_seconds} * 1000;
    bool const ordered = spec.enable_message_ordering;
    // With ordering, which key is held depends on rows other leases are changing: leases of an ordered
    // subscription take turns, across nodes, so a key's next message never goes out beside its previous one.
    if (ordered) {
      FERRY_RETURN_IF_ERROR(db.Run("SELECT pg_advisory_xact_lock($1::int8)", PgParams().Add(sub->id)));
    }
    std::set<std::string> held_keys;
    std::vector<int64_t> leased;
    int64_t bytes = 0;
    bool full = false;
    // Unordered: the scan starts where this node's last lease of the subscription stopped (see ScanFrom), and
    // falls back to the whole range when that finds nothing.
    int64_t from = ordered ? kWholeRange : ScanFrom(sub->id);
    std::optional<int64_t> resume;  // where the next scan may start: every row before it was taken or moved
    bool whole_range = from == kWholeRange;  // the scan that found the first row covered the whole range
    int64_t lowest = std::numeric_limits<int64_t>::max();  // the first row it found
    while (!full && static_cast<int>(result.messages.size()) < max) {
      PgParams params = PgParams().Add(sub->id).Add(now_ms).Add(int64_t{max - static_cast<int>(result.messages.size())});
      if (!ordered) params.Add(from);
      FERRY_ASSIGN_OR_RETURN(
          auto rows,
          db.Query(ordered ? "SELECT d.msg_id, d.visible_at, d.attempts, d.leased, m.publish_time, m.data, "
                             "m.attributes, m.ordering_key FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                             "WHERE d.sub_id = $1 AND d.visible_at <= $2 AND (d.ordering_key = '' OR "
                             "d.ordering_key NOT IN (SELECT ordering_key FROM deliveries WHERE sub_id = $1 AND "
                             "ordering_key <> '' AND visible_at > $2)) ORDER BY d.msg_id LIMIT $3 FOR UPDATE OF d"
                           : "SELECT d.msg_id, d.visible_at, d.attempts, d.leased, m.publish_time, m.data, "
                             "m.attributes, m.ordering_key FROM deliveries d JOIN messages m ON m.id = d.msg_id "
                             "WHERE d.sub_id = $1 AND d.visible_at >= $4 AND d.visible_at <= $2 "
                             "ORDER BY d.visible_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
                   params));
      // Nothing from the cursor on: what lies below it waits for the window's end (ScanFrom).
      if (rows.empty()) break;
      if (!resume) {
        whole_range = from == kWholeRange;
        lowest = rows.Int(0, 1);
      }
      bool progressed = false;
      for (int i = 0; i < rows.size(); ++i) {
        int64_t msg_id = rows.Int(i, 0), visible_at = rows.Int(i, 1);
        int attempts = static_cast<int>(rows.Int(i, 2));
        PubsubMessage message;
        message.message_id = std::to_string(msg_id);
        message.publish_time_ms = rows.Int(i, 4);
        message.data = rows.Bytes(i, 5);
        FERRY_ASSIGN_OR_RETURN(message.attributes, DecodeAttributes(rows.Text(i, 6)));
        message.ordering_key = rows.Text(i, 7);
        bool const keyed = ordered && !message.ordering_key.empty();
        if (keyed && held_keys.contains(message.ordering_key)) continue;
        if (rows.Bool(i, 3)) {
          // The last lease expired: that delivery failed.
          auto after = OnFailedAttempt(spec, attempts, visible_at);
          if (after.dead_letter) {
            FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, *sub, msg_id, attempts, now_ms));
            if (moved) {
              ++result.dead_lettered;
              progressed = true;
              dead_letter_topics.push_back(spec.dead_letter_policy->dead_letter_topic);
              continue;
            }
          }
          ++result.expired;
          if (after.retry_at_ms > now_ms) {
            FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, msg_id, after.retry_at_ms, false));
            if (keyed) held_keys.insert(message.ordering_key);
            progressed = true;
            continue;
          }
        }
        int64_t size = static_cast<int64_t>(message.data.size() + message.ordering_key.size());
        for (auto const& [k, v] : message.attributes) size += static_cast<int64_t>(k.size() + v.size());
        if (!result.messages.empty() && bytes + size > max_bytes) {
          full = true;  // it and the rest stay as they are: not leased, no attempt counted
          resume = visible_at;
          break;
        }
        bytes += size;
        int attempt = attempts + 1;
        leased.push_back(msg_id);
        ReceivedMessage r;
        r.message = std::move(message);
        r.ack_id = EncodeAckId({sub->id, msg_id, attempt, sub->seeks});
        r.attempt = attempt;
        if (spec.dead_letter_policy) r.delivery_attempt = attempt;
        result.messages.push_back(std::move(r));
        progressed = true;
      }
      if (!leased.empty()) {
        FERRY_RETURN_IF_ERROR(db.Run("UPDATE deliveries SET attempts = attempts + 1, leased = true, visible_at = $2 "
                                     "WHERE sub_id = $1 AND msg_id = ANY($3::int8[])",
                                     PgParams().Add(sub->id).Add(lease_until).AddArray(leased)));
        leased.clear();
      }
      if (!full) resume = rows.Int(rows.size() - 1, 1);
      if (!ordered) from = *resume;  // the next round goes on from there
      if (!progressed) break;  // only keys held back: the next round would find the same rows
    }
    if (!ordered && resume) {
      SetScanFrom(sub->id, *resume, whole_range ? std::optional(lowest) : std::nullopt);
    } else if (!ordered && whole_range) {
      // Nothing at all: the next leases look from a second ago on (publishes still committing, clocks of other
      // nodes a little behind) until the window ends, instead of walking the whole range each time.
      SetScanFrom(sub->id, now_ms - 1000, lowest);
    }
    return OkStatus();
  }));
  for (auto const& t : dead_letter_topics) Notify(t);
  return result;
}

// Why a lease does not scan from the start of the subscription's range: every lease moves rows to a later
// visible_at and every ack deletes them, and each leaves an index entry behind at the old place until vacuum
// removes it. A transaction held open anywhere in the database stops vacuum, and then every lease from the start
// walks every entry left since (measured: a third of the throughput gone after 20 s; with an empty pull scanning
// the whole range, 45% while held). So a scan of the whole range runs once a window (a second, or up to 8 while
// those scans find nothing below where leases had got to), and within the window leases start where the last one
// stopped. The rows below that are such entries, rows taken or skipped (locked by another lease), or rows that
// came back there (a lease ran out; a nack on another node): those wait for the window's end. A nack, a deadline
// change to 0 or a seek on this node ends the window at once (ForgetScanFrom).
int64_t PgStore::ScanFrom(int64_t sub_id) {
  std::lock_guard lock(cursor_mu_);
  auto it = cursors_.find(sub_id);
  if (it == cursors_.end() || std::chrono::steady_clock::now() - it->second.set > it->second.window) {
    return kWholeRange;
  }
  return it->second.from;
}

void PgStore::ForgetScanFrom(int64_t sub_id) {
  std::lock_guard lock(cursor_mu_);
  cursors_.erase(sub_id);
}

void PgStore::SetScanFrom(int64_t sub_id, int64_t from, std::optional<int64_t> whole_range_lowest) {
  std::lock_guard lock(cursor_mu_);
  auto [it, created] = cursors_.try_emplace(sub_id);
  Cursor& cursor = it->second;
  if (!whole_range_lowest) {
    cursor.from = std::max(cursor.from, from);  // within a window it only moves on
    return;
  }
  // A new window. Longer when the whole range held nothing below where leases had got to.
  constexpr auto kMin = std::chrono::seconds(1), kMax = std::chrono::seconds(8);
  bool nothing_below = !created && *whole_range_lowest >= cursor.from;
  cursor.window = nothing_below ? std::min<std::chrono::steady_clock::duration>(cursor.window * 2, kMax) : kMin;
  cursor.from = from;
  cursor.set = std::chrono::steady_clock::now();
}

StatusOr<AckResult> PgStore::Acknowledge(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                         int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  AckResult result;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
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
        FERRY_ASSIGN_OR_RETURN(bool current, IsCurrentLease(db, *sub, ref, std::numeric_limits<int64_t>::min()));
        if (!current) continue;
      } else if (!IssuedBy(ref, sub->id, sub->seeks)) {
        continue;
      }
      msg_ids.push_back(ref.message_id);
    }
    FERRY_ASSIGN_OR_RETURN(auto removed, RemoveDeliveries(db, *sub, msg_ids));
    result.acked = static_cast<int>(removed);
    return OkStatus();
  }));
  return result;
}

StatusOr<ModifyResult> PgStore::ModifyAckDeadline(std::string const& subscription,
                                                  std::vector<std::string> const& ack_ids, int seconds,
                                                  int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  return Modify(subscription, refs, seconds, nullptr, now_ms);
}

StatusOr<int> PgStore::ReturnUnsent(std::string const& subscription, std::vector<std::string> const& ack_ids,
                                    int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds(ack_ids));
  int returned = 0;
  int64_t returned_to = 0;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    returned = 0;
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    returned_to = sub->id;
    for (auto const& ref : refs) {
      if (!IssuedBy(ref, sub->id, sub->seeks)) continue;
      // The lease's own attempt, still held: the lease is current, so taking its attempt back is exact.
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("UPDATE deliveries SET leased = false, visible_at = $4, "
                                                 "attempts = attempts - 1 WHERE sub_id = $1 AND msg_id = $2 AND "
                                                 "attempts = $3 AND leased",
                                                 PgParams().Add(sub->id).Add(ref.message_id)
                                                     .Add(int64_t{ref.attempt}).Add(now_ms)));
      returned += rows.Affected();
    }
    // Available again at once: every node's waiting pulls hear of it when this commits.
    if (returned > 0) FERRY_RETURN_IF_ERROR(NotifyAll(db, sub->spec.topic));
    return OkStatus();
  }));
  if (returned > 0) ForgetScanFrom(returned_to);  // committed: they are back below where leases start
  return returned;
}

StatusOr<ModifyResult> PgStore::Nack(std::string const& subscription, std::string const& ack_id,
                                     std::string const& error, int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto refs, DecodeAckIds({ack_id}));
  return Modify(subscription, refs, 0, &error, now_ms);
}

StatusOr<ModifyResult> PgStore::Modify(std::string const& subscription, std::vector<AckRef> const& refs,
                                       int seconds, std::string const* error, int64_t now_ms) {
  ModifyResult result;
  std::vector<std::string> dead_letter_topics;
  int64_t nacked = 0;  // the subscription, when messages come back (a deadline of 0)
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    result = {};
    dead_letter_topics.clear();
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    auto const& spec = sub->spec;
    nacked = seconds == 0 ? sub->id : 0;
    for (auto const& ref : refs) {
      // Only the current lease may be changed: a stale ack id must not touch a redelivered message. Exactly-once
      // subscriptions also refuse an expired lease, and say so.
      bool const exactly_once = spec.enable_exactly_once_delivery;
      int64_t const held_past = exactly_once ? now_ms : std::numeric_limits<int64_t>::min();
      FERRY_ASSIGN_OR_RETURN(bool current, IsCurrentLease(db, *sub, ref, held_past));
      if (!current) {
        if (exactly_once) result.invalid_ack_ids.push_back(EncodeAckId(ref));
        continue;
      }
      if (seconds > 0) {
        FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, now_ms + int64_t{seconds} * 1000, true));
        continue;
      }
      ++result.nacked;
      if (error != nullptr) {
        FERRY_RETURN_IF_ERROR(db.Run("UPDATE deliveries SET last_error = $3 WHERE sub_id = $1 AND msg_id = $2",
                                     PgParams().Add(sub->id).Add(ref.message_id).Add(*error)));
      }
      auto after = OnFailedAttempt(spec, ref.attempt, now_ms);
      if (after.dead_letter) {
        FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, *sub, ref.message_id, ref.attempt, now_ms));
        if (moved) {
          ++result.dead_lettered;
          dead_letter_topics.push_back(spec.dead_letter_policy->dead_letter_topic);
          continue;
        }
      }
      FERRY_RETURN_IF_ERROR(SetVisibility(db, sub->id, ref.message_id, after.retry_at_ms, false));
      if (spec.enable_message_ordering) {
        // A nack holds its key back: the later messages of the key that are out now come again after it.
        FERRY_RETURN_IF_ERROR(db.Run("UPDATE deliveries SET leased = false, visible_at = $3 WHERE sub_id = $1 AND "
                                     "msg_id > $2 AND leased AND ordering_key <> '' AND ordering_key = (SELECT "
                                     "ordering_key FROM deliveries WHERE sub_id = $1 AND msg_id = $2)",
                                     PgParams().Add(sub->id).Add(ref.message_id).Add(after.retry_at_ms)));
      }
    }
    // Nacked messages without a retry delay are available again at once, on every node.
    if (result.nacked > result.dead_lettered) FERRY_RETURN_IF_ERROR(NotifyAll(db, spec.topic));
    return OkStatus();
  }));
  if (nacked != 0) ForgetScanFrom(nacked);  // committed: they are back below where leases start
  for (auto const& t : dead_letter_topics) Notify(t);
  return result;
}

StatusOr<MaintenanceResult> PgStore::Maintain(int64_t now_ms, bool apply_retention) {
  MaintenanceResult result;
  std::lock_guard maintain_lock(maintain_mu_);
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    result = {};
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT id, spec, seeks FROM subscriptions"));
    std::unordered_map<int64_t, DecodedSub> decoded;
    for (int i = 0; i < rows.size(); ++i) {
      int64_t id = rows.Int(i, 0);
      std::string text = rows.Text(i, 1);
      auto known = maintained_subs_.find(id);
      DecodedSub entry;
      if (known != maintained_subs_.end() && known->second.text == text) {
        entry = std::move(known->second);
      } else {
        FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(text));
        entry = DecodedSub{std::move(text), PgSub{id, std::move(spec), 0}};
      }
      entry.sub.seeks = rows.Int(i, 2);
      decoded.emplace(id, std::move(entry));
    }
    maintained_subs_ = std::move(decoded);  // subscriptions deleted since are forgotten
    std::vector<PgSub const*> subs;
    subs.reserve(maintained_subs_.size());
    for (auto const& [id, entry] : maintained_subs_) subs.push_back(&entry.sub);

    // Expired leases with no attempt left (Exhausted), each taken by one node only: one query for every
    // subscription with a dead-letter policy (a query each was a round trip a second per subscription).
    std::vector<int64_t> policy_subs, max_attempts;
    std::unordered_map<int64_t, PgSub const*> by_id;
    for (PgSub const* sub : subs) {
      if (!sub->spec.dead_letter_policy) continue;
      policy_subs.push_back(sub->id);
      max_attempts.push_back(sub->spec.dead_letter_policy->max_delivery_attempts);
      by_id[sub->id] = sub;
    }
    if (!policy_subs.empty()) {
      FERRY_ASSIGN_OR_RETURN(
          auto exhausted,
          db.Query("SELECT d.sub_id, d.msg_id, d.attempts FROM deliveries d JOIN unnest($1::int8[], $2::int8[]) AS "
                   "p(sub_id, max_attempts) ON d.sub_id = p.sub_id WHERE d.visible_at <= $3 AND d.leased AND "
                   "d.attempts >= p.max_attempts ORDER BY d.sub_id, d.msg_id FOR UPDATE OF d SKIP LOCKED",
                   PgParams().AddArray(policy_subs).AddArray(max_attempts).Add(now_ms)));
      std::unordered_map<int64_t, int> moved_by_sub;
      for (int r = 0; r < exhausted.size(); ++r) {
        PgSub const& sub = *by_id.at(exhausted.Int(r, 0));
        FERRY_ASSIGN_OR_RETURN(bool moved, DeadLetter(db, sub, exhausted.Int(r, 1),
                                                      static_cast<int>(exhausted.Int(r, 2)), now_ms));
        if (moved) ++moved_by_sub[sub.id];
      }
      for (PgSub const* sub : subs) {
        if (auto it = moved_by_sub.find(sub->id); it != moved_by_sub.end()) {
          result.dead_lettered.emplace_back(sub->spec.name, it->second);
        }
      }
    }
    if (!apply_retention) return OkStatus();
    for (PgSub const* sub : subs) {
      int64_t before = now_ms - sub->spec.message_retention_ms;
      FERRY_ASSIGN_OR_RETURN(auto dropped, db.Query("DELETE FROM deliveries WHERE sub_id = $1 AND publish_time < $2",
                                                    PgParams().Add(sub->id).Add(before)));
      result.dropped_by_retention += dropped.Affected();
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM acked WHERE sub_id = $1 AND publish_time < $2",
                                   PgParams().Add(sub->id).Add(before)));
    }
    if (apply_retention) {
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM snapshot_messages WHERE snap_id IN (SELECT id FROM snapshots WHERE "
                                   "expire <= $1)",
                                   PgParams().Add(now_ms)));
      FERRY_RETURN_IF_ERROR(db.Run("DELETE FROM snapshots WHERE expire <= $1", PgParams().Add(now_ms)));
    }
    return OkStatus();
  }));
  if (apply_retention) {
    FERRY_RETURN_IF_ERROR(DropUnusedPartitions());
    int64_t last = 0;
    FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
      FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT last_value FROM message_ids"));
      last = rows.Int(0, 0);
      return OkStatus();
    }));
    FERRY_RETURN_IF_ERROR(EnsurePartitions(last + 1));  // the partition after the one in use, ahead of need
  }
  return result;
}

StatusOr<std::vector<HeldMessage>> PgStore::Peek(std::string const& subscription, int64_t after_id, int max) {
  std::vector<HeldMessage> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    out.clear();
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT d.msg_id, d.attempts, d.leased, m.publish_time, m.data, "
                                               "m.attributes, m.ordering_key FROM deliveries d JOIN messages m ON "
                                               "m.id = d.msg_id WHERE d.sub_id = $1 AND d.msg_id > $2 ORDER BY "
                                               "d.msg_id LIMIT $3",
                                               PgParams().Add(sub->id).Add(after_id).Add(int64_t{max})));
    for (int i = 0; i < rows.size(); ++i) {
      HeldMessage held;
      held.message.message_id = std::to_string(rows.Int(i, 0));
      held.attempts = static_cast<int>(rows.Int(i, 1));
      held.leased = rows.Bool(i, 2);
      held.message.publish_time_ms = rows.Int(i, 3);
      held.message.data = rows.Bytes(i, 4);
      FERRY_ASSIGN_OR_RETURN(held.message.attributes, DecodeAttributes(rows.Text(i, 5)));
      held.message.ordering_key = rows.Text(i, 6);
      out.push_back(std::move(held));
    }
    return OkStatus();
  }));
  return out;
}

StatusOr<std::vector<std::string>> PgStore::MoveMessages(std::string const& subscription,
                                                         std::vector<std::string> const& message_ids,
                                                         std::string const& to_subscription,
                                                         MessageRewrite const& rewrite,
                                                         int64_t now_ms) {
  std::vector<std::string> taken;
  std::string to_topic;
  FERRY_RETURN_IF_ERROR(Txn([&](PgConn& db) -> Status {
    taken.clear();
    FERRY_ASSIGN_OR_RETURN(auto sub, FindSub(db, subscription));
    if (!sub) return NotFoundError("Subscription does not exist");
    std::optional<PgSub> to;
    std::optional<int64_t> topic_id;
    if (!to_subscription.empty()) {
      FERRY_ASSIGN_OR_RETURN(to, FindSub(db, to_subscription));
      if (!to) return NotFoundError("Subscription does not exist");
      FERRY_ASSIGN_OR_RETURN(topic_id, FindTopicId(db, to->spec.topic));
      if (!topic_id) return NotFoundError("Topic not found");
      to_topic = to->spec.topic;
    }
    std::vector<int64_t> wanted;
    for (auto const& text : message_ids) {
      if (auto id = DecodeMessageId(text)) wanted.push_back(*id);
    }
    // Locked, so a concurrent redrive of the same message waits, then finds it gone.
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT msg_id FROM deliveries WHERE sub_id = $1 AND msg_id = "
                                               "ANY($2::int8[]) ORDER BY msg_id FOR UPDATE",
                                               PgParams().Add(sub->id).AddArray(wanted)));
    std::vector<int64_t> ids;
    std::vector<PubsubMessage> copies;
    for (int i = 0; i < rows.size(); ++i) {
      int64_t id = rows.Int(i, 0);
      ids.push_back(id);
      if (topic_id) {
        FERRY_ASSIGN_OR_RETURN(auto message, LoadMessage(db, id));
        copies.push_back(rewrite ? rewrite(std::move(message)) : std::move(message));
      }
    }
    if (topic_id && !copies.empty()) {
      FERRY_ASSIGN_OR_RETURN(auto published, InsertMessages(db, *topic_id, to_topic, copies, now_ms, to->id));
      (void)published;
    }
    FERRY_ASSIGN_OR_RETURN(auto removed, RemoveDeliveries(db, *sub, ids));
    (void)removed;
    for (int64_t id : ids) taken.push_back(std::to_string(id));
    return OkStatus();
  }));
  if (!to_topic.empty() && !taken.empty()) Notify(to_topic);
  return taken;
}

StatusOr<std::vector<SubscriptionStats>> PgStore::Stats() {
  std::vector<SubscriptionStats> out;
  FERRY_RETURN_IF_ERROR(Read([&](PgConn& db) -> Status {
    FERRY_ASSIGN_OR_RETURN(auto rows, db.Query("SELECT s.name, COUNT(d.msg_id), MIN(d.publish_time) FROM "
                                               "subscriptions s LEFT JOIN deliveries d ON d.sub_id = s.id "
                                               "GROUP BY s.id, s.name ORDER BY s.name"));
    for (int i = 0; i < rows.size(); ++i) {
      out.push_back({rows.Text(i, 0), rows.Int(i, 1), rows.IsNull(i, 2) ? 0 : rows.Int(i, 2)});
    }
    return OkStatus();
  }));
  return out;
}

}  // namespace ferry
