#include "storage/bucket_service.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <boost/crc.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "common/base64.h"
#include "model/json_codec.h"
#include "storage/beneath.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "model/function_spec.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

// Files Ferry writes while an upload is on its way; renamed into place when whole, never objects themselves.
constexpr char kUploadPrefix[] = ".ferry-upload-";

// The checksums Cloud Storage gives an object: MD5 (OpenSSL) and CRC32C (Castagnoli, Boost.CRC), fed the bytes in
// pieces.
class Checksums {
 public:
  Checksums() { EVP_DigestInit_ex(md5_.get(), EVP_md5(), nullptr); }

  void Update(std::string_view bytes) {
    crc_.process_bytes(bytes.data(), bytes.size());
    EVP_DigestUpdate(md5_.get(), bytes.data(), bytes.size());
    size_ += static_cast<int64_t>(bytes.size());
  }

  // Base64 of the MD5 and of the big-endian CRC32C, as the JSON API shows them; and the size.
  void Finish(ObjectInfo& o) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md5_.get(), digest, &len);
    o.md5_hash = Base64Encode(std::string_view(reinterpret_cast<char const*>(digest), len));
    uint32_t const crc = crc_.checksum();
    char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16), static_cast<char>(crc >> 8),
                  static_cast<char>(crc)};
    o.crc32c = Base64Encode(std::string_view(be, 4));
    o.size = size_;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md5_{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  // CRC-32C: polynomial 0x1EDC6F41, reflected, initial and final XOR all ones.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc_;
  int64_t size_ = 0;
};

std::string GuessContentType(std::string const& name) {
  static std::map<std::string, std::string> const kTypes = {
      {".json", "application/json"}, {".txt", "text/plain"},  {".csv", "text/csv"},
      {".html", "text/html"},        {".png", "image/png"},   {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},       {".pdf", "application/pdf"}, {".xml", "application/xml"}};
  auto it = kTypes.find(fs::path(name).extension().string());
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

// `path` below `root` ("a/b.txt"), or "" when it is not below it.
std::string RelativeName(std::string const& root, std::string const& path) {
  if (path.size() <= root.size() + 1 || path.compare(0, root.size(), root) != 0 || path[root.size()] != '/') return "";
  return path.substr(root.size() + 1);
}

bool IsHidden(std::string const& name) {
  for (auto const& part : fs::path(name)) {
    if (!part.empty() && part.string()[0] == '.') return true;
  }
  return false;
}

// A file's generation: its modification time in microseconds.
int64_t GenerationOf(struct stat const& st) { return int64_t{st.st_mtim.tv_sec} * 1'000'000 + st.st_mtim.tv_nsec / 1000; }

// The object an open file is, its bytes streamed through the checksums.
ObjectInfo ReadObjectFrom(int fd, struct stat const& st, std::string const& bucket, std::string const& name) {
  Checksums sums;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sums.Update(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  ObjectInfo o;
  o.bucket = bucket;
  o.name = name;
  o.generation = GenerationOf(st);
  sums.Finish(o);
  o.updated_ms = o.time_created_ms = o.generation / 1000;
  o.content_type = GuessContentType(name);
  return o;
}

// The object a file is now; NOT_FOUND when it is gone (or a link).
StatusOr<ObjectInfo> ReadObject(std::string const& bucket, std::string const& name, std::string const& root) {
  struct stat st {};
  auto fd = Beneath::OpenFile(root, name, &st);
  if (!fd.ok()) return NotFoundError("No such object: " + bucket + "/" + name);
  return ReadObjectFrom(fd->get(), st, bucket, name);
}

// Whether object `name` has a file below `root`.
bool FileExists(std::string const& root, std::string const& name) {
  struct stat st {};
  return Beneath::OpenFile(root, name, &st).ok();
}

// In a cluster, what a rescan sees is left alone until it has not changed for this long: a file another machine is
// still writing (inotify tells of the close only on the writing machine), or an upload recorded a moment before
// its file is renamed into place.
constexpr int64_t kSettleMillis = 2'000;
constexpr int64_t kClaimMillis = 10'000;    // a watching node that stops renewing loses its buckets after this
constexpr int64_t kRescanMillis = 5'000;    // how often the watching node reads its buckets' directories again

std::string WatchClaim(std::string const& bucket) { return "watch " + bucket; }

// Whether `object` still describes its file below `root` (same generation and size), without reading it.
bool Unchanged(ObjectInfo const& object, std::string const& root) {
  struct stat st {};
  auto fd = Beneath::OpenFile(root, object.name, &st);
  return fd.ok() && object.generation == GenerationOf(st) && object.size == static_cast<int64_t>(st.st_size);
}

}  // namespace

std::string ObjectInfo::ToJson() const {
  nlohmann::json j{{"kind", "storage#object"},
                   {"id", bucket + "/" + name + "/" + std::to_string(generation)},
                   {"name", name},
                   {"bucket", bucket},
                   {"generation", std::to_string(generation)},
                   {"metageneration", std::to_string(metageneration)},
                   {"contentType", content_type},
                   {"timeCreated", FormatRfc3339(time_created_ms)},
                   {"updated", FormatRfc3339(updated_ms)},
                   {"storageClass", "STANDARD"},
                   {"size", std::to_string(size)},
                   {"md5Hash", md5_hash},
                   {"crc32c", crc32c},
                   {"etag", md5_hash}};
  if (!metadata.empty()) j["metadata"] = metadata;
  return SafeDump(j);
}

StatusOr<ObjectInfo> ObjectInfo::FromJson(std::string const& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object()) return InvalidArgumentError("not an object resource");
  auto text = [&](char const* key) { return j.value(key, std::string()); };
  ObjectInfo o;
  o.bucket = text("bucket");
  o.name = text("name");
  auto number = [&](char const* key) -> int64_t {
    std::string v = text(key);
    return v.empty() ? 0 : std::strtoll(v.c_str(), nullptr, 10);
  };
  o.generation = number("generation");
  o.metageneration = std::max<int64_t>(1, number("metageneration"));
  o.size = number("size");
  o.content_type = text("contentType");
  o.md5_hash = text("md5Hash");
  o.crc32c = text("crc32c");
  auto millis = [&](char const* key) -> int64_t {
    auto t = ParseRfc3339(text(key));
    return t.ok() ? *t : 0;
  };
  o.time_created_ms = millis("timeCreated");
  o.updated_ms = millis("updated");
  if (auto m = j.find("metadata"); m != j.end() && m->is_object()) {
    for (auto const& [k, v] : m->items()) {
      if (v.is_string()) o.metadata[k] = v.get<std::string>();
    }
  }
  return o;
}

BucketService::BucketService(BucketStore& store, Broker& broker, Cluster cluster)
    : store_(store), broker_(broker), cluster_(std::move(cluster)) {}

BucketService::~BucketService() { Stop(); }

void BucketService::Start() {
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Sync();
  if (cluster_.claims != nullptr) FollowClaims();  // so a lone node watches its buckets from the start
  thread_ = std::thread([this] { WatchLoop(); });
}

void BucketService::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  thread_.join();
  ::close(inotify_fd_);
  ::close(wake_fd_);
  if (cluster_.claims == nullptr) return;
  std::lock_guard lock(mu_);
  for (auto const& [name, bucket] : buckets_) {
    if (bucket.watching) (void)cluster_.claims->Release(WatchClaim(name), cluster_.node);  // taken over at once
  }
}

void BucketService::Sync() {
  auto records = store_.ListBuckets();
  if (!records.ok()) {
    std::fprintf(stderr, "ferry: buckets: %s\n", records.status().message().c_str());
    return;
  }
  std::lock_guard lock(mu_);
  std::map<std::string, Watched> next;
  for (auto const& r : *records) {
    auto it = buckets_.find(r.name);
    if (it != buckets_.end() && it->second.record.path == r.path) {  // the same directory, maybe new settings
      it->second.record = r;
      next[r.name] = std::move(it->second);
      continue;
    }
    // Alone, this node watches every bucket; in a cluster, the one holding its claim does (FollowClaims).
    next[r.name] = Watched{.record = r, .watching = cluster_.claims == nullptr};
  }
  for (auto& [name, bucket] : buckets_) {
    if (!next.contains(name) && bucket.watching && cluster_.claims != nullptr) {
      (void)cluster_.claims->Release(WatchClaim(name), cluster_.node);
    }
  }
  // Watches of buckets that went, moved or are no longer this node's are dropped; new ones are added, knowing the
  // files already there.
  for (auto it = watches_.begin(); it != watches_.end();) {
    auto b = next.find(it->second.first);
    if (b != next.end() && b->second.watching && it->second.second.rfind(b->second.record.path, 0) == 0) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_fd_, it->first);
    it = watches_.erase(it);
  }
  buckets_ = std::move(next);
  for (auto& [name, bucket] : buckets_) {
    if (!bucket.watching) continue;
    bool watched = false;
    for (auto const& [wd, w] : watches_) watched = watched || (w.first == name && w.second == bucket.record.path);
    if (!watched) Reconcile(name, AddWatches(name, bucket.record.path));
  }
}

void BucketService::FollowClaims() {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (auto const& [name, bucket] : buckets_) names.push_back(name);
  }
  int64_t const now = broker_.NowMillis();
  std::map<std::string, bool> held;
  for (auto const& name : names) {
    auto claim = cluster_.claims->Claim(WatchClaim(name), cluster_.node, now, now + kClaimMillis);
    held[name] = claim.ok() && *claim;  // the database away: stop watching, so two nodes never both watch long
  }
  std::lock_guard lock(mu_);
  for (auto& [name, bucket] : buckets_) {
    auto it = held.find(name);
    if (it == held.end()) continue;  // came with a deploy meanwhile: next round
    if (it->second != bucket.watching) {
      Watch(bucket, it->second);
    } else if (bucket.watching && now - bucket.scanned_ms >= kRescanMillis) {
      Reconcile(name, AddWatches(name, bucket.record.path));  // what other machines wrote
    }
  }
}

// Holds mu_. Starts watching a bucket's directory, raising what changed since its last events; or stops.
void BucketService::Watch(Watched& bucket, bool on) {
  bucket.watching = on;
  if (on) {
    std::fprintf(stderr, "ferry: node %s watches bucket %s\n", cluster_.node.c_str(), bucket.record.name.c_str());
    Reconcile(bucket.record.name, AddWatches(bucket.record.name, bucket.record.path));
    return;
  }
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second.first != bucket.record.name) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_fd_, it->first);
    it = watches_.erase(it);
  }
}

// Holds mu_. Compares the files of a bucket just watched with what its last events said (the store's), and
// raises the events of what changed while nobody watched: finalize for a new or changed file, delete (archive
// with versioning) for the generation it replaced or a file that went. The first scan of a directory raises
// nothing: its files are where the bucket starts. In a cluster it also runs every few seconds, for the changes
// other machines made; there, what changed in the last moments waits for the next round (kSettleMillis).
void BucketService::Reconcile(std::string const& bucket_name, std::vector<std::string> const& files) {
  auto& bucket = buckets_[bucket_name];
  auto stored = store_.BucketObjects(bucket_name);
  if (!stored.ok()) {
    std::fprintf(stderr, "ferry: bucket %s: %s\n", bucket_name.c_str(), stored.status().message().c_str());
    return;
  }
  int64_t const now = broker_.NowMillis();
  int64_t const settled_before = cluster_.claims == nullptr ? std::numeric_limits<int64_t>::max() : now - kSettleMillis;
  bucket.scanned_ms = now;
  std::map<std::string, ObjectInfo> known;
  for (auto const& [name, json] : *stored) {
    if (name.empty()) continue;
    auto object = ObjectInfo::FromJson(json);
    if (object.ok()) known[name] = *std::move(object);
  }
  auto scanned = stored->find("");
  if (scanned == stored->end() || scanned->second != bucket.record.path) {
    // The first scan: its files are where the bucket starts.
    std::vector<BucketObjectChange> changes{{"", bucket.record.path}};
    bucket.objects.clear();
    for (auto const& [name, object] : known) changes.push_back({name, std::nullopt});
    for (auto const& name : files) {
      auto object = ReadObject(bucket_name, name, bucket.record.path);
      if (!object.ok()) continue;
      bucket.objects[name] = *object;
      changes.push_back({name, object->ToJson()});
    }
    Commit(bucket.record, std::move(changes), {});
    return;
  }
  bucket.objects.clear();
  // Alone, nobody else records this bucket's objects: what was read is what is stored, and every change goes in
  // one transaction (a restart after many changes is not a transaction a file). In a cluster each object's change
  // reads and records its state in a transaction of its own (Update), as an upload through another node may
  // record the same object meanwhile.
  bool const alone = cluster_.claims == nullptr;
  std::vector<BucketObjectChange> changes;
  std::vector<PubsubMessage> events;
  auto raise = [&](std::string const& name, std::optional<ObjectInfo> const& stored, Decide const& decide) {
    if (!alone) {
      (void)Update(bucket, name, decide);
      return;
    }
    Outcome out = decide(stored);
    if (!out.changed) return;
    changes.push_back({name, out.object ? std::optional(out.object->ToJson()) : std::nullopt});
    for (auto& e : out.events) events.push_back(std::move(e));
    if (out.object) bucket.objects[name] = *out.object;
  };
  for (auto const& name : files) {
    auto old = known.find(name);
    if (old != known.end() && Unchanged(old->second, bucket.record.path)) {
      bucket.objects[name] = old->second;  // unchanged, with its content type and metadata
      known.erase(old);
      continue;
    }
    std::optional<ObjectInfo> stored;
    if (old != known.end()) {
      stored = std::move(old->second);
      known.erase(old);
    }
    auto object = ReadObject(bucket_name, name, bucket.record.path);
    if (!object.ok() || object->updated_ms >= settled_before) continue;
    raise(name, stored, [&](std::optional<ObjectInfo> const& now) { return Written(bucket.record, *object, now); });
  }
  for (auto const& entry : known) {  // gone while nobody watched
    std::string const& name = entry.first;
    if (entry.second.updated_ms >= settled_before) continue;
    raise(name, entry.second, [&](std::optional<ObjectInfo> const& now) { return Gone(bucket.record, name, now); });
  }
  Commit(bucket.record, std::move(changes), std::move(events));
}

// Holds mu_. Watches `dir` and the directories below it, each before it is read: a file that arrives meanwhile is
// seen by the watch or by the read (by both, and the second sighting changes nothing). Returns the files, by
// object name.
std::vector<std::string> BucketService::AddWatches(std::string const& bucket_name, std::string const& dir) {
  auto const& root = buckets_[bucket_name].record.path;
  std::vector<std::string> files;
  std::vector<std::string> pending{dir};
  while (!pending.empty()) {
    std::string d = std::move(pending.back());
    pending.pop_back();
    int wd = inotify_add_watch(inotify_fd_, d.c_str(),
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_DELETE_SELF);
    if (wd >= 0) watches_[wd] = {bucket_name, d};
    // Files may come and go during the walk: only the error_code forms, which never throw on this thread.
    std::error_code ec;
    for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::string rel = RelativeName(root, it->path().string());
      if (rel.empty() || IsHidden(rel)) continue;
      if (Status st = CheckObjectName(rel); !st.ok()) {
        std::fprintf(stderr, "ferry: bucket %s: skipping a file whose name is no object name (%s)\n",
                     bucket_name.c_str(), st.message().c_str());
        continue;
      }
      std::error_code type_ec;
      auto type = it->symlink_status(type_ec).type();  // links are never followed: they could lead out
      if (type == fs::file_type::directory) {
        pending.push_back(it->path().string());
      } else if (type == fs::file_type::regular) {
        files.push_back(rel);
      }
    }
  }
  return files;
}

void BucketService::WatchLoop() {
  alignas(inotify_event) char buf[64 * 1024];
  auto next_claims = std::chrono::steady_clock::now();
  while (true) {
    int timeout = -1;
    if (cluster_.claims != nullptr) {
      auto now = std::chrono::steady_clock::now();
      if (now >= next_claims) {
        try {
          FollowClaims();
        } catch (std::exception const& e) {
          std::fprintf(stderr, "ferry: buckets: %s\n", e.what());
        }
        next_claims = now + std::chrono::seconds(1);
      }
      timeout = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(next_claims - now).count());
      timeout = std::clamp(timeout, 0, 1000);
    }
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, timeout);
    if (ready <= 0) continue;
    if (fds[1].revents != 0) return;
    ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    for (ssize_t off = 0; off < n;) {
      auto* ev = reinterpret_cast<inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      std::string bucket, dir;
      {
        std::lock_guard lock(mu_);
        auto it = watches_.find(ev->wd);
        if (it == watches_.end()) continue;
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
          if (ev->mask & IN_IGNORED) watches_.erase(it);
          continue;
        }
        bucket = it->second.first;
        dir = it->second.second;
      }
      if (ev->len == 0) continue;
      std::string path = dir + "/" + ev->name;
      std::string root;
      {
        std::lock_guard lock(mu_);
        auto b = buckets_.find(bucket);
        if (b == buckets_.end()) continue;
        root = b->second.record.path;
      }
      std::string name = RelativeName(root, path);
      if (name.empty() || IsHidden(name)) continue;
      if (Status st = CheckObjectName(name); !st.ok()) {
        std::fprintf(stderr, "ferry: bucket %s: skipping a file whose name is no object name (%s)\n", bucket.c_str(),
                     st.message().c_str());
        continue;
      }
      if (ev->mask & IN_ISDIR) {
        if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
          std::vector<std::string> files;
          {
            std::lock_guard lock(mu_);
            files = AddWatches(bucket, path);
          }
          try {
            for (auto const& file : files) OnFileChanged(bucket, file);  // a directory moved in with files
          } catch (std::exception const& e) {
            std::fprintf(stderr, "ferry: bucket %s: %s: %s\n", bucket.c_str(), path.c_str(), e.what());
          }
        }
        continue;
      }
      try {
        if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) OnFileChanged(bucket, name);
        if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) OnFileGone(bucket, name);
      } catch (std::exception const& e) {  // a file system race must not end the daemon
        std::fprintf(stderr, "ferry: bucket %s: %s: %s\n", bucket.c_str(), name.c_str(), e.what());
      }
    }
  }
}

void BucketService::OnFileChanged(std::string const& bucket_name, std::string const& name) {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket_name);
  if (b == buckets_.end() || !b->second.watching) return;
  auto object = ReadObject(bucket_name, name, b->second.record.path);
  if (!object.ok()) return;  // gone again already (its delete event follows), or a link
  (void)RaiseWritten(b->second, *std::move(object));
}

StatusOr<std::optional<ObjectInfo>> BucketService::Update(Watched& bucket, std::string const& name,
                                                          Decide const& decide) {
  std::optional<ObjectInfo> after;
  std::size_t raised = 0;
  Status st = store_.UpdateBucketObject(
      bucket.record.name, name, StorageEventsTopic(bucket.record.project, bucket.record.name),
      [&](std::optional<std::string> const& stored) {
        std::optional<ObjectInfo> old;
        if (stored) {
          if (auto object = ObjectInfo::FromJson(*stored); object.ok()) old = *std::move(object);
        }
        Outcome outcome = decide(old);
        after = outcome.changed ? outcome.object : old;
        raised = outcome.events.size();
        BucketObjectUpdate update;
        if (outcome.changed) {
          update.changes.push_back({name, outcome.object ? std::optional(outcome.object->ToJson()) : std::nullopt});
        }
        update.events = std::move(outcome.events);
        return update;
      },
      broker_.NowMillis());
  if (!st.ok()) {
    std::fprintf(stderr, "ferry: bucket %s: cannot record %zu event(s) of %s: %s\n", bucket.record.name.c_str(),
                 raised, name.c_str(), st.message().c_str());
    return st;
  }
  if (after) {
    bucket.objects[name] = *after;
  } else {
    bucket.objects.erase(name);
  }
  return after;
}

BucketService::Outcome BucketService::Written(BucketRecord const& bucket, ObjectInfo const& object,
                                              std::optional<ObjectInfo> const& stored) {
  if (stored && stored->generation == object.generation && stored->md5_hash == object.md5_hash) {
    return {};  // raised already, by this node or another
  }
  Outcome out{.object = object, .changed = true};
  if (stored) {
    // Overwritten: the old generation is deleted (archived with versioning), as Cloud Storage reports it.
    out.events.push_back(Event(bucket, *stored, GoneEventType(bucket)));
    out.object->time_created_ms = object.updated_ms;
  }
  out.events.push_back(Event(bucket, *out.object, "google.storage.object.finalize"));
  return out;
}

BucketService::Outcome BucketService::Gone(BucketRecord const& bucket, std::string const& name,
                                           std::optional<ObjectInfo> const& stored) {
  // Raised already; or the file is back (an upload recorded before its file is renamed into place).
  if (!stored || FileExists(bucket.path, name)) return {};
  return {.events = {Event(bucket, *stored, GoneEventType(bucket))}, .changed = true};
}

StatusOr<ObjectInfo> BucketService::RaiseWritten(Watched& bucket, ObjectInfo object) {
  if (auto known = bucket.objects.find(object.name);
      known != bucket.objects.end() && !Written(bucket.record, object, known->second).changed) {
    return known->second;
  }
  FERRY_ASSIGN_OR_RETURN(auto after, Update(bucket, object.name, [&](std::optional<ObjectInfo> const& stored) {
                           return Written(bucket.record, object, stored);
                         }));
  if (!after) return NotFoundError("No such object: " + bucket.record.name + "/" + object.name);
  return *after;
}

void BucketService::RaiseGone(Watched& bucket, std::string const& name) {
  (void)Update(bucket, name, [&](std::optional<ObjectInfo> const& stored) { return Gone(bucket.record, name, stored); });
}

void BucketService::OnFileGone(std::string const& bucket_name, std::string const& name) {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket_name);
  if (b == buckets_.end() || !b->second.watching) return;
  RaiseGone(b->second, name);
}

char const* BucketService::GoneEventType(BucketRecord const& bucket) {
  return bucket.versioning ? "google.storage.object.archive" : "google.storage.object.delete";
}

PubsubMessage BucketService::Event(BucketRecord const& bucket, ObjectInfo const& object, char const* event_type) {
  PubsubMessage m;
  m.data = object.ToJson();
  // Cloud Storage's Pub/Sub notification attributes.
  m.attributes = {{"eventType", event_type},
                  {"bucketId", bucket.name},
                  {"objectId", object.name},
                  {"objectGeneration", std::to_string(object.generation)},
                  {"eventTime", FormatRfc3339(broker_.NowMillis())},
                  {"payloadFormat", "JSON_API_V1"}};
  return m;
}

// Holds mu_. The events and the objects' new state go to the store in one transaction: a crash leaves both or
// neither, so a restart raises again what was not recorded, and nothing twice that was.
void BucketService::Commit(BucketRecord const& bucket, std::vector<BucketObjectChange> changes,
                           std::vector<PubsubMessage> events) {
  if (changes.empty() && events.empty()) return;
  Status st = store_.RecordBucketEvents(bucket.name, changes, StorageEventsTopic(bucket.project, bucket.name), events,
                                        broker_.NowMillis());
  if (!st.ok()) {
    std::fprintf(stderr, "ferry: bucket %s: cannot record %zu event(s): %s\n", bucket.name.c_str(), events.size(),
                 st.message().c_str());
  }
}

StatusOr<std::string> BucketService::RootOf(std::string const& bucket, std::string const& name,
                                            BucketRecord* record) {
  // "dir/" is a name Cloud Storage allows (a folder placeholder) and clients ask for (gcloud storage ls); here a
  // directory is never an object, so it is simply not there.
  if (!name.empty() && name.back() == '/') return NotFoundError("No such object: " + bucket + "/" + name);
  FERRY_RETURN_IF_ERROR(CheckObjectName(name));
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return NotFoundError("The specified bucket does not exist: " + bucket);
  if (record != nullptr) *record = b->second.record;
  return b->second.record.path;
}

StatusOr<ObjectInfo> BucketService::Put(std::string const& bucket, std::string const& name, std::string const& bytes,
                                        std::string const& content_type, std::map<std::string, std::string> metadata) {
  FERRY_ASSIGN_OR_RETURN(auto root, RootOf(bucket, name, nullptr));
  // Written whole under a hidden name, then renamed in: the watcher sees one complete object.
  FERRY_ASSIGN_OR_RETURN(auto tmp, NewUploadFile(bucket));
  for (std::size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(tmp.fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      (void)::unlinkat(tmp.dir.get(), tmp.name.c_str(), 0);
      return UnavailableError("cannot write the object: " + std::string(std::strerror(errno)));
    }
    done += static_cast<std::size_t>(n);
  }
  return Install(bucket, name, root, std::move(tmp), content_type, std::move(metadata));
}

void BucketService::Discard(UploadFile const& file) {
  if (file.dir.get() >= 0) (void)::unlinkat(file.dir.get(), file.name.c_str(), 0);
}

StatusOr<BucketService::UploadFile> BucketService::NewUploadFile(std::string const& bucket) {
  BucketRecord record;
  {
    std::lock_guard lock(mu_);
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return NotFoundError("The specified bucket does not exist: " + bucket);
    record = b->second.record;
  }
  static std::atomic<uint64_t> uploads{0};
  UploadFile f;
  f.name = kUploadPrefix + std::to_string(::getpid()) + "-" + std::to_string(++uploads);
  f.dir = UniqueFd(::open(record.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (f.dir.get() < 0) return UnavailableError("cannot open the bucket directory");
  f.fd = UniqueFd(::openat(f.dir.get(), f.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (f.fd.get() < 0) return UnavailableError("cannot create an upload file: " + std::string(std::strerror(errno)));
  return f;
}

StatusOr<ObjectInfo> BucketService::Install(std::string const& bucket, std::string const& name,
                                            std::string const& root, UploadFile file, std::string const& content_type,
                                            std::map<std::string, std::string> metadata) {
  std::string leaf;
  auto parent = Beneath::OpenParent(root, name, true, &leaf);
  if (!parent.ok()) {
    Discard(file);
    return parent.status();
  }
  // The object is what the upload file is (renaming keeps its modification time, so its generation).
  UniqueFd in(::openat(file.dir.get(), file.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (in.get() < 0 || ::fstat(in.get(), &st) != 0) {
    Discard(file);
    return UnavailableError("cannot read the upload back: " + std::string(std::strerror(errno)));
  }
  ObjectInfo object = ReadObjectFrom(in.get(), st, bucket, name);
  if (!content_type.empty()) object.content_type = content_type;
  object.metadata = std::move(metadata);
  // The upload's finalize is recorded before its file is in place, and before the upload is answered, as Cloud
  // Storage raises it: what the client does next (a metadata update) comes after it, and a watch (this node's or
  // another's) finds this generation seen, with the upload's content type and metadata.
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) {
    Discard(file);
    return NotFoundError("The specified bucket does not exist: " + bucket);
  }
  auto raised = RaiseWritten(b->second, object);
  if (!raised.ok()) {
    Discard(file);
    return UnavailableError("cannot record the upload's event: " + std::string(raised.status().message()));
  }
  if (::renameat(file.dir.get(), file.name.c_str(), parent->get(), leaf.c_str()) != 0) {
    int err = errno;
    Discard(file);
    RaiseGone(b->second, name);  // its finalize told of a file that never came
    return UnavailableError("cannot store object " + name + ": " + std::strerror(err));
  }
  return *raised;
}

StatusOr<BucketRecord> BucketService::Bucket(std::string const& bucket) {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return NotFoundError("The specified bucket does not exist: " + bucket);
  return b->second.record;
}

std::vector<BucketRecord> BucketService::Buckets() {
  std::lock_guard lock(mu_);
  std::vector<BucketRecord> out;
  for (auto const& [name, b] : buckets_) out.push_back(b.record);
  return out;
}

StatusOr<ObjectInfo> BucketService::Get(std::string const& bucket, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto root, RootOf(bucket, name, nullptr));
  {
    // What the last event said, while the file is still that: no need to read and checksum it again.
    std::lock_guard lock(mu_);
    auto& known = buckets_[bucket].objects;
    if (auto it = known.find(name); it != known.end() && Unchanged(it->second, root)) return it->second;
  }
  // What another node's events said (its upload, with its content type and metadata).
  if (auto stored = store_.BucketObject(bucket, name); stored.ok() && *stored) {
    if (auto object = ObjectInfo::FromJson(**stored); object.ok() && Unchanged(*object, root)) return *object;
  }
  // Not seen yet (the watcher is a moment behind): read it as it is now.
  return ReadObject(bucket, name, root);
}

StatusOr<BucketService::OpenObject> BucketService::Open(std::string const& bucket, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto root, RootOf(bucket, name, nullptr));
  struct stat st {};
  auto fd = Beneath::OpenFile(root, name, &st);
  if (!fd.ok()) return NotFoundError("No such object: " + bucket + "/" + name);
  return OpenObject{std::move(*fd), static_cast<int64_t>(st.st_size)};
}

StatusOr<std::vector<ObjectInfo>> BucketService::List(std::string const& bucket, std::string const& prefix) {
  BucketRecord record;
  {
    std::lock_guard lock(mu_);
    auto b = buckets_.find(bucket);
    if (b == buckets_.end()) return NotFoundError("The specified bucket does not exist: " + bucket);
    record = b->second.record;
  }
  std::vector<ObjectInfo> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(record.path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string rel = RelativeName(record.path, it->path().string());
    std::error_code type_ec;
    if (rel.empty() || IsHidden(rel) || it->symlink_status(type_ec).type() == fs::file_type::symlink) {
      if (it->symlink_status(type_ec).type() == fs::file_type::directory) it.disable_recursion_pending();
      continue;
    }
    if (it->symlink_status(type_ec).type() != fs::file_type::regular || rel.rfind(prefix, 0) != 0) continue;
    if (!CheckObjectName(rel).ok()) continue;
    auto object = Get(bucket, rel);
    if (object.ok()) out.push_back(*std::move(object));
  }
  std::sort(out.begin(), out.end(), [](auto const& a, auto const& b) { return a.name < b.name; });
  return out;
}

Status BucketService::Delete(std::string const& bucket, std::string const& name) {
  FERRY_ASSIGN_OR_RETURN(auto root, RootOf(bucket, name, nullptr));
  std::string leaf;
  auto parent = Beneath::OpenParent(root, name, false, &leaf);
  struct stat st {};
  if (!parent.ok() || ::fstatat(parent->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
    return NotFoundError("No such object: " + bucket + "/" + name);
  }
  if (::unlinkat(parent->get(), leaf.c_str(), 0) != 0) {
    return UnavailableError("cannot delete " + name + ": " + std::strerror(errno));
  }
  // Its delete is raised before the call is answered; the watch finds it raised.
  std::lock_guard lock(mu_);
  if (auto b = buckets_.find(bucket); b != buckets_.end()) RaiseGone(b->second, name);
  return OkStatus();
}

StatusOr<ObjectInfo> BucketService::UpdateMetadata(std::string const& bucket, std::string const& name,
                                                   std::string const& content_type,
                                                   std::map<std::string, std::string> metadata) {
  FERRY_ASSIGN_OR_RETURN(auto root, RootOf(bucket, name, nullptr));
  FERRY_ASSIGN_OR_RETURN(auto now, ReadObject(bucket, name, root));
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return NotFoundError("The specified bucket does not exist: " + bucket);
  FERRY_ASSIGN_OR_RETURN(auto after, Update(b->second, name, [&](std::optional<ObjectInfo> const& stored) {
                           // The generation its events told of, with the metadata they said; or the file as it is.
                           ObjectInfo object = stored && stored->generation == now.generation ? *stored : now;
                           if (!content_type.empty()) object.content_type = content_type;
                           for (auto const& [k, v] : metadata) object.metadata[k] = v;
                           ++object.metageneration;  // as Cloud Storage counts changes to an object's metadata
                           return Outcome{
                               .object = object,
                               .events = {Event(b->second.record, object, "google.storage.object.metadataUpdate")},
                               .changed = true};
                         }));
  if (!after) return NotFoundError("No such object: " + bucket + "/" + name);
  return *after;
}

}  // namespace ferry
