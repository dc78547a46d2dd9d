// The embedded store: construction, the commit hooks, and the steps its concerns share.
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <limits>
#include <span>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/status_macros.h"
#include "model/json_codec.h"
#include "store/delivery_policy.h"

namespace ferry {
namespace {

MultiRowSql const& InsertMessagesSql() {
  static MultiRowSql const sql("INSERT INTO messages(id, topic_id, publish_time, data, attributes, ordering_key, refs) "
                               "VALUES ", "(?, ?, ?, ?, ?, ?, ?)", ", ", "");
  return sql;
}
MultiRowSql const& InsertDeliveriesSql() {
  static MultiRowSql const sql("INSERT INTO deliveries(sub_id, msg_id, publish_time, visible_at, ordering_key) "
                               "VALUES ", "(?, ?, ?, ?, ?)", ", ", "");
  return sql;
}
// ?1 = sub_id, ?2 = lease deadline, then one msg_id per row; attempts go up by one.
MultiRowSql const& LeaseSql() {
  static MultiRowSql const sql("UPDATE deliveries SET attempts = attempts + 1, leased = 1, visible_at = ?2 "
                               "WHERE sub_id = ?1 AND msg_id IN (", "?", ", ", ")");
  return sql;
}
// ?1 = sub_id, then one msg_id per row.
MultiRowSql const& AckSql() {
  static MultiRowSql const sql("DELETE FROM deliveries WHERE sub_id = ?1 AND msg_id IN (", "?", ", ",
                               ") RETURNING msg_id");
  return sql;
}

}  // namespace

StatusOr<std::vector<int64_t>> FirstColumn(SqliteStmt& st) {
  std::vector<int64_t> out;
  FERRY_RETURN_IF_ERROR(AppendFirstColumn(st, out));
  return out;
}

Status AppendFirstColumn(SqliteStmt& st, std::vector<int64_t>& out) {
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(st.Int(0));
  }
  st.Reset();
  return OkStatus();
}

SqliteStore::SqliteStore(std::unique_ptr<SqliteDb> writer, std::unique_ptr<SqliteDb> reader, int64_t last_message_id,
                         int wal_fd)
    : writer_db_(std::move(writer)),
      reader_(std::move(reader)),
      last_message_id_(last_message_id),
      committed_message_id_(last_message_id),
      writer_(std::make_unique<GroupCommitWriter>(
          *writer_db_, wal_fd,
          GroupCommitWriter::Hooks{[this](SqliteDb& db) { return BeforeCommit(db); },
                                   [this](bool committed) { AfterBatch(committed); }})) {}

// Ids handed out in a transaction that then failed are skipped, never reused.
Status SqliteStore::BeforeCommit(SqliteDb& db) {
  if (last_message_id_ == committed_message_id_) return OkStatus();
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE meta SET value = ?1 WHERE key = 'last_message_id'"));
  return st->Bind(1, last_message_id_).Exec();
}

void SqliteStore::AfterBatch(bool committed) {
  if (committed) {
    committed_message_id_ = last_message_id_;
    std::sort(published_topics_.begin(), published_topics_.end());
    published_topics_.erase(std::unique(published_topics_.begin(), published_topics_.end()), published_topics_.end());
    std::lock_guard lock(listener_mu_);
    if (publish_listener_) {
      for (auto const& t : published_topics_) publish_listener_(t);
    }
  } else {
    ForgetSubscriptions();  // the caches may hold what the rollback undid
    // The rows are as before the batch; the lease clock, if the batch changed it, is not.
    if (lease_clock_.changes() != clock_changes_before_batch_) lease_clock_.ForgetAll();
  }
  published_topics_.clear();
  clock_changes_before_batch_ = lease_clock_.changes();
}

StatusOr<std::optional<int64_t>> SqliteStore::FindTopicId(SqliteDb& db, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id FROM topics WHERE name = ?1"));
  st->Bind(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  std::optional<int64_t> id;
  if (row) id = st->Int(0);
  st->Reset();
  return id;
}

// On the writer thread: a subscription by name, from the cache of decoded specs (decoding the JSON spec for
// every pull and ack cost more than the rows they touch).
StatusOr<std::optional<SubRow>> SqliteStore::FindSub(SqliteDb& db, std::string const& name) {
  if (auto it = sub_cache_.find(name); it != sub_cache_.end()) return std::optional<SubRow>(it->second);
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id, spec, seeks FROM subscriptions WHERE name = ?1"));
  st->Bind(1, name);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<SubRow>();
  SubRow sub{st->Int(0), {}, st->Int(2)};
  FERRY_ASSIGN_OR_RETURN(sub.spec, DecodeSub(st->Text(1)));
  st->Reset();
  sub_cache_[name] = sub;
  return std::optional<SubRow>(std::move(sub));
}

void SqliteStore::ForgetSubscriptions() {
  sub_cache_.clear();
  all_subs_.reset();
  fanout_cache_.clear();
}

// Wraps a job that changes subscriptions so the caches forget them before and after it.
std::function<Status(SqliteDb&)> SqliteStore::ChangingSubscriptions(std::function<Status(SqliteDb&)> fn) {
  return [this, fn = std::move(fn)](SqliteDb& db) {
    ForgetSubscriptions();
    Status st = fn(db);
    ForgetSubscriptions();
    return st;
  };
}

// Whether `ref` names the current lease of its message on the subscription, held past `now_ms`.
StatusOr<std::optional<SqliteStore::LeaseDeadline>> SqliteStore::CurrentLease(SqliteDb& db, SubRow const& sub,
                                                                               AckRef const& ref, int64_t now_ms) {
  using Result = std::optional<LeaseDeadline>;
  if (!IssuedBy(ref, sub.id, sub.seeks)) return Result();
  FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("SELECT visible_at FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2 "
                                              "AND attempts = ?3 AND leased = 1"));
  sel->Bind(1, sub.id).Bind(2, ref.message_id).Bind(3, ref.attempt);
  FERRY_ASSIGN_OR_RETURN(bool found, sel->Step());
  LeaseDeadline deadline;
  if (found) deadline.written = deadline.until = sel->Int(0);
  sel->Reset();
  if (!found) return Result();
  if (auto held = HeldUntil(sub.id, ref.message_id, ref.attempt); held && *held > deadline.until) {
    deadline.until = *held;
  }
  if (deadline.until <= now_ms) return Result();
  return Result(deadline);
}

StatusOr<bool> SqliteStore::IsCurrentLease(SqliteDb& db, SubRow const& sub, AckRef const& ref, int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto current, CurrentLease(db, sub, ref, now_ms));
  return current.has_value();
}

std::optional<int64_t> SqliteStore::HeldUntil(int64_t sub_id, int64_t msg_id, int attempt) const {
  if (held_extensions_.empty()) return std::nullopt;
  auto it = held_extensions_.find({sub_id, msg_id});
  if (it == held_extensions_.end() || it->second.attempt != attempt) return std::nullopt;
  return it->second.until;
}

void SqliteStore::ForgetExtensions(int64_t sub_id, std::vector<int64_t> const& msg_ids) {
  if (held_extensions_.empty()) return;
  for (int64_t id : msg_ids) held_extensions_.erase({sub_id, id});
}

void SqliteStore::ForgetExtensions(int64_t sub_id) {
  std::erase_if(held_extensions_, [&](auto const& e) { return e.first.first == sub_id; });
}

StatusOr<bool> SqliteStore::WriteHeldExtension(SqliteDb& db, int64_t sub_id, int64_t msg_id, int attempt,
                                               int64_t now_ms) {
  auto held = HeldUntil(sub_id, msg_id, attempt);
  if (!held) return false;
  held_extensions_.erase({sub_id, msg_id});
  if (*held <= now_ms) return false;
  FERRY_RETURN_IF_ERROR(SetVisibility(db, sub_id, msg_id, *held, true));
  return true;
}

// Ends the subscription's hold on these messages as acknowledged. Returns how many it held.
StatusOr<int64_t> SqliteStore::RemoveDeliveries(SqliteDb& db, SubRow const& sub, std::vector<int64_t> const& msg_ids) {
  if (sub.spec.retain_acked_messages) {
    // Kept as acknowledged for seek: the reference moves from deliveries to acked.
    static MultiRowSql const kKeep("INSERT OR IGNORE INTO acked(sub_id, msg_id, publish_time) SELECT sub_id, "
                                   "msg_id, publish_time FROM deliveries WHERE sub_id = ?1 AND msg_id IN (",
                                   "?", ", ", ")");
    int64_t kept = 0;
    for (std::size_t first = 0; first < msg_ids.size(); first += kRowsPerStatement) {
      int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, msg_ids.size() - first));
      for (auto const* sql : {&kKeep, &AckSql()}) {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare(sql->For(n)));
        st->Bind(1, sub.id);
        for (int i = 0; i < n; ++i) st->Bind(i + 2, msg_ids[first + static_cast<std::size_t>(i)]);
        while (true) {
          FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
          if (!row) break;
          ++kept;  // only the DELETE ... RETURNING yields rows
        }
      }
    }
    ForgetExtensions(sub.id, msg_ids);
    for (int64_t id : msg_ids) lease_clock_.Erase(sub.id, id);
    return kept;
  }
  ForgetExtensions(sub.id, msg_ids);
  for (int64_t id : msg_ids) lease_clock_.Erase(sub.id, id);
  std::vector<int64_t> removed;
  FERRY_RETURN_IF_ERROR(ForIdRuns(
      msg_ids,
      [&](int64_t low, int64_t high) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM deliveries WHERE sub_id = ?1 AND msg_id BETWEEN "
                                                    "?2 AND ?3 RETURNING msg_id"));
        del->Bind(1, sub.id).Bind(2, low).Bind(3, high);
        return AppendFirstColumn(*del, removed);
      },
      [&](std::span<int64_t const> chunk) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare(AckSql().For(static_cast<int>(chunk.size()))));
        del->Bind(1, sub.id);
        for (std::size_t i = 0; i < chunk.size(); ++i) del->Bind(static_cast<int>(i) + 2, chunk[i]);
        return AppendFirstColumn(*del, removed);
      }));
  FERRY_RETURN_IF_ERROR(ReleaseMessages(db, removed));
  return static_cast<int64_t>(removed.size());
}

Status SqliteStore::CheckDeadLetterTopic(SqliteDb& db, Subscription const& sub) {
  if (!sub.dead_letter_policy) return OkStatus();
  FERRY_ASSIGN_OR_RETURN(auto id, FindTopicId(db, sub.dead_letter_policy->dead_letter_topic));
  if (!id) return NotFoundError("Dead letter topic not found");
  return OkStatus();
}

Status SqliteStore::SetVisibility(SqliteDb& db, int64_t sub_id, int64_t msg_id, int64_t visible_at, bool leased) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE deliveries SET visible_at = ?3, leased = ?4 "
                                             "WHERE sub_id = ?1 AND msg_id = ?2"));
  FERRY_RETURN_IF_ERROR(st->Bind(1, sub_id).Bind(2, msg_id).Bind(3, visible_at).Bind(4, leased ? 1 : 0).Exec());
  if (leased) {
    lease_clock_.Set(sub_id, msg_id, visible_at);
  } else {
    lease_clock_.Erase(sub_id, msg_id);
  }
  return OkStatus();
}

// On the writer thread: the subscriptions of a topic with their filters, cached like FindSub.
StatusOr<std::vector<FanoutTarget> const*> SqliteStore::FanoutOf(SqliteDb& db, int64_t topic_id) {
  if (auto it = fanout_cache_.find(topic_id); it != fanout_cache_.end()) return &it->second;
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id, spec FROM subscriptions WHERE topic_id = ?1"));
  st->Bind(1, topic_id);
  std::vector<FanoutTarget> targets;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    FERRY_ASSIGN_OR_RETURN(auto spec, DecodeSub(st->Text(1)));
    FERRY_ASSIGN_OR_RETURN(auto filter, Filter::Parse(spec.filter));
    targets.push_back({st->Int(0), std::move(filter), spec.enable_message_ordering});
  }
  st->Reset();
  return &(fanout_cache_[topic_id] = std::move(targets));
}

// Appends messages to a topic and gives each subscription whose filter matches a copy; a message a filter
// refuses is, as in Pub/Sub, acknowledged on that subscription's behalf at once. Messages nobody receives get ids
// and are not stored.
StatusOr<std::vector<int64_t>> SqliteStore::InsertMessages(SqliteDb& db, int64_t topic_id,
                                                           std::vector<PubsubMessage> const& messages, int64_t now_ms,
                                                           int64_t only_sub) {
  std::vector<int64_t> ids;
  ids.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) ids.push_back(++last_message_id_);
  FERRY_ASSIGN_OR_RETURN(auto const* targets, FanoutOf(db, topic_id));
  if (targets->empty()) return ids;
  struct Copy {
    int64_t sub_id;
    std::size_t message;
    bool ordered;
  };
  std::vector<Copy> copies;
  copies.reserve(messages.size() * targets->size());
  std::vector<int64_t> refs(messages.size(), 0);
  for (std::size_t m = 0; m < messages.size(); ++m) {
    for (auto const& target : *targets) {
      if (only_sub != 0 && target.sub_id != only_sub) continue;
      if (!target.filter.Matches(messages[m].attributes)) continue;
      copies.push_back({target.sub_id, m, target.ordered});
      ++refs[m];
    }
  }
  std::vector<std::size_t> stored;
  for (std::size_t m = 0; m < messages.size(); ++m) {
    if (refs[m] > 0) stored.push_back(m);
  }
  for (std::size_t first = 0; first < stored.size(); first += kRowsPerStatement) {
    int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, stored.size() - first));
    FERRY_ASSIGN_OR_RETURN(auto ins, db.Prepare(InsertMessagesSql().For(n)));
    for (int i = 0; i < n; ++i) {
      std::size_t m = stored[first + static_cast<std::size_t>(i)];
      int const p = i * 7;
      ins->Bind(p + 1, ids[m])
          .Bind(p + 2, topic_id)
          .Bind(p + 3, now_ms)
          .BindBlob(p + 4, messages[m].data)
          .Bind(p + 5, EncodeAttributes(messages[m].attributes))
          .Bind(p + 6, messages[m].ordering_key)
          .Bind(p + 7, refs[m]);
    }
    FERRY_RETURN_IF_ERROR(ins->Exec());
  }
  static std::string const kNoKey;
  for (std::size_t first = 0; first < copies.size(); first += kRowsPerStatement) {
    int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, copies.size() - first));
    FERRY_ASSIGN_OR_RETURN(auto fan, db.Prepare(InsertDeliveriesSql().For(n)));
    for (int i = 0; i < n; ++i) {
      auto const& copy = copies[first + static_cast<std::size_t>(i)];
      int const p = i * 5;
      fan->Bind(p + 1, copy.sub_id)
          .Bind(p + 2, ids[copy.message])
          .Bind(p + 3, now_ms)
          .Bind(p + 4, now_ms)
          .Bind(p + 5, copy.ordered ? messages[copy.message].ordering_key : kNoKey);
    }
    FERRY_RETURN_IF_ERROR(fan->Exec());
  }
  return ids;
}

// Leases the messages until `until`, counting one more delivery attempt each.
Status SqliteStore::MarkLeased(SqliteDb& db, int64_t sub_id, std::vector<int64_t> const& msg_ids, int64_t until) {
  FERRY_RETURN_IF_ERROR(ForIdRuns(
      msg_ids,
      [&](int64_t low, int64_t high) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE deliveries SET attempts = attempts + 1, leased = 1, "
                                                   "visible_at = ?2 WHERE sub_id = ?1 AND msg_id BETWEEN ?3 AND ?4"));
        return st->Bind(1, sub_id).Bind(2, until).Bind(3, low).Bind(4, high).Exec();
      },
      [&](std::span<int64_t const> chunk) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare(LeaseSql().For(static_cast<int>(chunk.size()))));
        st->Bind(1, sub_id).Bind(2, until);
        for (std::size_t i = 0; i < chunk.size(); ++i) st->Bind(static_cast<int>(i) + 3, chunk[i]);
        return st->Exec();
      }));
  for (int64_t id : msg_ids) lease_clock_.Set(sub_id, id, until);
  return OkStatus();
}

// Drops one subscription's hold on each message, deleting a message with its last hold.
Status SqliteStore::ReleaseMessages(SqliteDb& db, std::vector<int64_t> const& msg_ids) {
  static MultiRowSql const kDelete("DELETE FROM messages WHERE refs <= 1 AND id IN (", "?", ", ", ") RETURNING id");
  static MultiRowSql const kDecrement("UPDATE messages SET refs = refs - 1 WHERE id IN (", "?", ", ", ")");
  std::vector<int64_t> deleted;  // of the messages named, those whose last hold this was
  FERRY_RETURN_IF_ERROR(ForIdRuns(
      msg_ids,
      [&](int64_t low, int64_t high) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM messages WHERE refs <= 1 AND id BETWEEN ?1 AND ?2 "
                                                    "RETURNING id"));
        del->Bind(1, low).Bind(2, high);
        return AppendFirstColumn(*del, deleted);
      },
      [&](std::span<int64_t const> chunk) -> Status {
        FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare(kDelete.For(static_cast<int>(chunk.size()))));
        for (std::size_t i = 0; i < chunk.size(); ++i) del->Bind(static_cast<int>(i) + 1, chunk[i]);
        return AppendFirstColumn(*del, deleted);
      }));
  // The rest are held by other subscriptions too. With one subscription to the topic there is no rest: `deleted`
  // has each id at most once, so as many as named means all of them (without sorting a copy on every ack).
  if (deleted.size() == msg_ids.size()) return OkStatus();
  std::vector<int64_t> named = msg_ids;
  std::sort(named.begin(), named.end());
  named.erase(std::unique(named.begin(), named.end()), named.end());
  std::sort(deleted.begin(), deleted.end());
  std::vector<int64_t> held;
  std::set_difference(named.begin(), named.end(), deleted.begin(), deleted.end(), std::back_inserter(held));
  for (std::size_t first = 0; first < held.size(); first += kRowsPerStatement) {
    int n = static_cast<int>(std::min<std::size_t>(kRowsPerStatement, held.size() - first));
    FERRY_ASSIGN_OR_RETURN(auto dec, db.Prepare(kDecrement.For(n)));
    for (int i = 0; i < n; ++i) dec->Bind(i + 1, held[first + static_cast<std::size_t>(i)]);
    FERRY_RETURN_IF_ERROR(dec->Exec());
  }
  return OkStatus();
}

// Removes a subscription's copies of messages published before `before_ms`. Returns how many.
StatusOr<int64_t> SqliteStore::DropDeliveries(SqliteDb& db, int64_t sub_id, int64_t before_ms) {
  FERRY_ASSIGN_OR_RETURN(auto dec, db.Prepare("UPDATE messages SET refs = refs - 1 WHERE id IN (SELECT msg_id "
                                              "FROM deliveries WHERE sub_id = ?1 AND publish_time < ?2)"));
  FERRY_RETURN_IF_ERROR(dec->Bind(1, sub_id).Bind(2, before_ms).Exec());
  FERRY_ASSIGN_OR_RETURN(auto gc, db.Prepare("DELETE FROM messages WHERE refs <= 0 AND id IN (SELECT msg_id FROM "
                                             "deliveries WHERE sub_id = ?1 AND publish_time < ?2)"));
  FERRY_RETURN_IF_ERROR(gc->Bind(1, sub_id).Bind(2, before_ms).Exec());
  FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM deliveries WHERE sub_id = ?1 AND publish_time < ?2"));
  FERRY_RETURN_IF_ERROR(del->Bind(1, sub_id).Bind(2, before_ms).Exec());
  return static_cast<int64_t>(db.Changes());
}

// Forgets a subscription's acknowledged messages published before `before_ms`.
Status SqliteStore::DropAcked(SqliteDb& db, int64_t sub_id, int64_t before_ms) {
  FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("DELETE FROM acked WHERE sub_id = ?1 AND publish_time < ?2 "
                                              "RETURNING msg_id"));
  sel->Bind(1, sub_id).Bind(2, before_ms);
  FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*sel));
  return ReleaseMessages(db, ids);
}

Status SqliteStore::DropSnapshot(SqliteDb& db, int64_t snap_id) {
  FERRY_ASSIGN_OR_RETURN(auto sel, db.Prepare("DELETE FROM snapshot_messages WHERE snap_id = ?1 RETURNING msg_id"));
  sel->Bind(1, snap_id);
  FERRY_ASSIGN_OR_RETURN(auto ids, FirstColumn(*sel));
  FERRY_RETURN_IF_ERROR(ReleaseMessages(db, ids));
  FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM snapshots WHERE id = ?1"));
  return del->Bind(1, snap_id).Exec();
}

StatusOr<PubsubMessage> SqliteStore::LoadMessage(SqliteDb& db, int64_t msg_id) {
  FERRY_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT publish_time, data, attributes, ordering_key FROM messages "
                                             "WHERE id = ?1"));
  st->Bind(1, msg_id);
  FERRY_ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return InternalError("message " + std::to_string(msg_id) + " is missing");
  PubsubMessage m;
  m.message_id = std::to_string(msg_id);
  m.publish_time_ms = st->Int(0);
  m.data = st->Text(1);
  FERRY_ASSIGN_OR_RETURN(m.attributes, DecodeAttributes(st->Text(2)));
  m.ordering_key = st->Text(3);
  st->Reset();
  return m;
}

// Publishes the message to the subscription's dead-letter topic with the CloudPubSubDeadLetterSource*
// attributes and removes it from the subscription, in the caller's transaction. False when the dead-letter
// topic no longer exists: the message then stays and is redelivered.
StatusOr<bool> SqliteStore::DeadLetter(SqliteDb& db, SubRow const& sub, int64_t msg_id, int attempts, int64_t now_ms) {
  FERRY_ASSIGN_OR_RETURN(auto dlt_id, FindTopicId(db, sub.spec.dead_letter_policy->dead_letter_topic));
  if (!dlt_id) return false;
  FERRY_ASSIGN_OR_RETURN(auto message, LoadMessage(db, msg_id));
  FERRY_ASSIGN_OR_RETURN(auto err, db.Prepare("SELECT last_error FROM deliveries WHERE sub_id = ?1 AND "
                                              "msg_id = ?2 AND last_error IS NOT NULL"));
  err->Bind(1, sub.id).Bind(2, msg_id);
  FERRY_ASSIGN_OR_RETURN(bool has_error, err->Step());
  std::optional<std::string> last_error;
  if (has_error) last_error = err->Text(0);
  err->Reset();
  FERRY_ASSIGN_OR_RETURN(message, DeadLetterCopy(std::move(message), sub.spec, attempts, last_error));
  FERRY_RETURN_IF_ERROR(InsertMessages(db, *dlt_id, {message}, now_ms));
  FERRY_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM deliveries WHERE sub_id = ?1 AND msg_id = ?2"));
  FERRY_RETURN_IF_ERROR(del->Bind(1, sub.id).Bind(2, msg_id).Exec());
  lease_clock_.Erase(sub.id, msg_id);
  FERRY_RETURN_IF_ERROR(ReleaseMessages(db, {msg_id}));
  return true;
}

StatusOr<std::unique_ptr<Store>> MakeSqliteStore(StoreOptions const& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return UnavailableError("cannot create data directory \"" + options.data_dir + "\": " + ec.message());
  std::string path = (std::filesystem::path(options.data_dir) / "ferry.db").string();

  FERRY_ASSIGN_OR_RETURN(auto writer, SqliteDb::Open(path));
  // 16 KiB pages: fewer B-tree levels and page writes per message than the 4 KiB default (measured with
  // bench/pubsub_bench.sh: +10% publish, +5-15% pull+ack). Only a new database takes it.
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA page_size = 16384"));
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode = WAL"));
  FERRY_RETURN_IF_ERROR(writer->Exec(options.sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = OFF"));
  FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA foreign_keys = OFF"));
  FERRY_RETURN_IF_ERROR(MigrateSqliteStore(*writer));

  int64_t last_message_id = 0;
  {  // scoped: the statement must be reset before the writer thread owns the connection
    FERRY_ASSIGN_OR_RETURN(auto last, writer->Prepare("SELECT value FROM meta WHERE key = 'last_message_id'"));
    FERRY_ASSIGN_OR_RETURN(bool found, last->Step());
    if (!found) return InternalError("database is missing meta.last_message_id");
    last_message_id = last->Int(0);
  }

  // With a descriptor of the WAL, the store syncs it itself, off the writer's path (see the top of this file);
  // without one, SQLite's own synchronous=FULL keeps every answer durable.
  int wal_fd = -1;
  if (options.sync) {
    wal_fd = open((path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd >= 0) FERRY_RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = NORMAL"));
  }

  FERRY_ASSIGN_OR_RETURN(auto reader, SqliteDb::Open(path));
  FERRY_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON"));
  return std::unique_ptr<Store>(
      new SqliteStore(std::move(writer), std::move(reader), last_message_id, wal_fd));
}

}  // namespace ferry
