#include "api/storage/storage_api.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <optional>
#include <tuple>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "api/storage/upload_parsing.h"
#include "common/percent_encode.h"
#include "model/json_codec.h"

namespace ferry {
namespace {

constexpr std::string_view kUpload = "/upload/storage/v1/b/";
constexpr std::string_view kResumableUpload = "/resumable/upload/storage/v1/b/";  // gcloud's (apitools') path
constexpr std::string_view kDownload = "/download/storage/v1/b/";
constexpr std::string_view kBuckets = "/storage/v1/b";
// Resumable uploads are spooled to disk, and bounded so that no client fills it or holds sessions forever.
constexpr auto kResumableIdle = std::chrono::minutes(10);
constexpr int64_t kMaxResumableBytes = int64_t{4} << 30;
constexpr std::size_t kMaxResumableSessions = 16;

HttpResponse JsonOf(std::string body) { return HttpResponse{200, "application/json", std::move(body), {}}; }


// An object resource's writable fields from a JSON body ("" and {} when absent).
struct ObjectFields {
  std::string name, content_type;
  std::map<std::string, std::string> metadata;
};

StatusOr<ObjectFields> ParseObjectFields(std::string const& text) {
  ObjectFields out;
  if (text.empty()) return out;
  auto parsed = ParseJsonText(text);
  if (!parsed.ok()) return parsed.status();
  auto& body = *parsed;
  if (!body.is_object()) return InvalidArgumentError("Invalid JSON payload received");
  auto string_field = [&](char const* key, std::string& into) -> Status {
    if (!body.contains(key)) return OkStatus();
    if (!body[key].is_string()) return InvalidArgumentError(std::string(key) + " must be a string");
    into = body[key].get<std::string>();
    return OkStatus();
  };
  if (auto st = string_field("name", out.name); !st.ok()) return st;
  if (auto st = string_field("contentType", out.content_type); !st.ok()) return st;
  if (body.contains("metadata") && !body["metadata"].is_null()) {
    if (!body["metadata"].is_object()) return InvalidArgumentError("metadata must be an object");
    for (auto const& [k, v] : body["metadata"].items()) {
      if (!v.is_string()) return InvalidArgumentError("metadata values must be strings");
      out.metadata[k] = v.get<std::string>();
    }
  }
  return out;
}

std::string NewUploadId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) id += kHex[random() & 15];
  return id;
}

nlohmann::json ObjectJson(ObjectInfo const& o, std::string const& base_url) {
  auto j = nlohmann::json::parse(o.ToJson(), nullptr, false);
  std::string path = "/storage/v1/b/" + o.bucket + "/o/" + PercentEncode(o.name);
  j["selfLink"] = base_url + path;
  j["mediaLink"] = base_url + "/download" + path + "?generation=" + std::to_string(o.generation) + "&alt=media";
  return j;
}

HttpResponse ObjectResponse(ObjectInfo const& o, std::string const& base_url) {
  return JsonOf(SafeDump(ObjectJson(o, base_url)));
}

nlohmann::json BucketJson(BucketRecord const& b) {
  return {{"kind", "storage#bucket"},      {"id", b.name},
          {"name", b.name},                {"location", "LOCAL"},
          {"storageClass", "STANDARD"},    {"metageneration", "1"},
          {"versioning", {{"enabled", b.versioning}}}};
}

}  // namespace

bool StorageApi::Serves(std::string_view path) {
  return path.rfind(kUpload, 0) == 0 || path.rfind(kResumableUpload, 0) == 0 || path.rfind(kDownload, 0) == 0 ||
         path == kBuckets || path.rfind(std::string(kBuckets) + "/", 0) == 0;
}

HttpResponse StorageApi::Handle(HttpRequest const& req) {
  bool resumable = req.path.rfind(kResumableUpload, 0) == 0;
  bool upload = resumable || req.path.rfind(kUpload, 0) == 0;
  bool download = req.path.rfind(kDownload, 0) == 0;
  std::string_view rest = std::string_view(req.path);
  if (upload || download) {
    rest.remove_prefix((resumable ? kResumableUpload : upload ? kUpload : kDownload).size());
  } else {
    rest.remove_prefix(kBuckets.size());
    if (rest.empty() || rest == "/") return Buckets(req, "");
    rest.remove_prefix(1);
  }
  auto slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (!upload && !download && rest.empty()) return Buckets(req, bucket);
  if (bucket.empty() || rest.rfind("/o", 0) != 0) return ErrorResponse(NotFoundError("No such path: " + req.path));
  rest.remove_prefix(2);

  if (upload) {
    if (!rest.empty()) return ErrorResponse(NotFoundError("No such path: " + req.path));
    return Upload(req, bucket);
  }

  if (rest.empty()) {  // the bucket's objects
    if (req.method != "GET") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET"), 405);
    std::string prefix = req.Query("prefix"), delimiter = req.Query("delimiter");
    auto list = buckets_.List(bucket, prefix);
    if (!list.ok()) return ErrorResponse(list.status());
    nlohmann::json items = nlohmann::json::array();
    std::set<std::string> prefixes;
    for (auto const& o : *list) {
      // With a delimiter, names with one past the prefix roll up into "prefixes", as directories.
      if (!delimiter.empty()) {
        auto cut = o.name.find(delimiter, prefix.size());
        if (cut != std::string::npos) {
          prefixes.insert(o.name.substr(0, cut + delimiter.size()));
          continue;
        }
      }
      items.push_back(ObjectJson(o, base_url_(req)));
    }
    nlohmann::json out{{"kind", "storage#objects"}};
    if (!items.empty()) out["items"] = std::move(items);
    if (!prefixes.empty()) out["prefixes"] = prefixes;
    return JsonOf(SafeDump(out));
  }
  if (rest[0] != '/' || rest.size() == 1) return ErrorResponse(NotFoundError("No such path: " + req.path));
  std::string name(rest.substr(1));
  if (req.method == "GET") {
    auto object = buckets_.Get(bucket, name);
    if (!object.ok()) return ErrorResponse(object.status());
    if (download || req.Query("alt") == "media") {
      // Streamed from the file, and a range read from its place on disk: a download never holds the object.
      auto file = buckets_.Open(bucket, name);
      if (!file.ok()) return ErrorResponse(file.status());
      HttpResponse res{200, object->content_type, "",
                       {{"x-goog-generation", std::to_string(object->generation)},
                        {"x-goog-hash", "crc32c=" + object->crc32c + ",md5=" + object->md5_hash}}};
      int64_t first = 0, last = file->size - 1;
      if (std::string range = req.Header("range"); !range.empty()) {  // sliced downloads ask for byte ranges
        auto slice = ParseRange(range, file->size);
        if (!slice.ok()) return ErrorResponse(slice.status(), 416);
        std::tie(first, last) = *slice;
        res.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
                                                      "/" + std::to_string(file->size));
        res.status = 206;
      }
      res.file = std::make_shared<FileSlice>(file->fd.release(), first, last - first + 1);
      return res;
    }
    return ObjectResponse(*object, base_url_(req));
  }
  if (download) return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET"), 405);
  if (req.method == "DELETE") {
    Status st = buckets_.Delete(bucket, name);
    if (!st.ok()) return ErrorResponse(st);
    return HttpResponse{204, "", "", {}};
  }
  if (req.method == "PATCH") {
    auto fields = ParseObjectFields(req.body);
    if (!fields.ok()) return ErrorResponse(fields.status());
    auto object = buckets_.UpdateMetadata(bucket, name, fields->content_type, std::move(fields->metadata));
    if (!object.ok()) return ErrorResponse(object.status());
    return ObjectResponse(*object, base_url_(req));
  }
  return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET, PATCH or DELETE"), 405);
}

HttpResponse StorageApi::Buckets(HttpRequest const& req, std::string_view name) {
  if (req.method != "GET") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET"), 405);
  if (!name.empty()) {
    auto bucket = buckets_.Bucket(std::string(name));
    if (!bucket.ok()) return ErrorResponse(bucket.status());
    return JsonOf(SafeDump(BucketJson(*bucket)));
  }
  std::string project = req.Query("project");
  nlohmann::json items = nlohmann::json::array();
  for (auto const& b : buckets_.Buckets()) {
    if (project.empty() || b.project == project) items.push_back(BucketJson(b));
  }
  nlohmann::json out{{"kind", "storage#buckets"}};
  if (!items.empty()) out["items"] = std::move(items);
  return JsonOf(SafeDump(out));
}

HttpResponse StorageApi::Upload(HttpRequest const& req, std::string const& bucket) {
  std::string type = req.Query("uploadType");
  std::string upload_id = req.Query("upload_id");
  if (type == "resumable" && !upload_id.empty()) return ContinueResumable(req, upload_id);
  if (req.method != "POST") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use POST"), 405);
  if (type == "resumable") return StartResumable(req, bucket);
  ObjectFields fields;
  std::string bytes;
  if (type == "media") {
    fields.content_type = req.Header("content-type");
    bytes = req.body;
  } else if (type == "multipart") {
    auto parts = MultipartParts(req.Header("content-type"), req.body);
    if (!parts.ok()) return ErrorResponse(parts.status());
    if (parts->size() != 2) return ErrorResponse(InvalidArgumentError("A multipart upload has two parts: metadata, media"));
    auto parsed = ParseObjectFields((*parts)[0].body);
    if (!parsed.ok()) return ErrorResponse(parsed.status());
    fields = *std::move(parsed);
    if (fields.content_type.empty()) fields.content_type = (*parts)[1].content_type;
    bytes = std::move((*parts)[1].body);
  } else {
    return ErrorResponse(InvalidArgumentError("uploadType must be media, multipart or resumable, not \"" + type + "\""));
  }
  if (!req.Query("name").empty()) fields.name = req.Query("name");
  if (fields.name.empty()) return ErrorResponse(InvalidArgumentError("Required parameter: name"));
  auto object = buckets_.Put(bucket, fields.name, bytes, fields.content_type, std::move(fields.metadata));
  if (!object.ok()) return ErrorResponse(object.status());
  return ObjectResponse(*object, base_url_(req));
}

void StorageApi::ExpireIdle() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = resumable_.begin(); it != resumable_.end();) {
    if (now - it->second.touched > kResumableIdle) {
      BucketService::Discard(*it->second.file);
      it = resumable_.erase(it);
    } else {
      ++it;
    }
  }
}

HttpResponse StorageApi::StartResumable(HttpRequest const& req, std::string const& bucket) {
  auto fields = ParseObjectFields(req.body);
  if (!fields.ok()) return ErrorResponse(fields.status());
  if (!req.Query("name").empty()) fields->name = req.Query("name");
  if (fields->name.empty()) return ErrorResponse(InvalidArgumentError("Required parameter: name"));
  if (fields->content_type.empty()) fields->content_type = req.Header("x-upload-content-type");
  if (auto root = buckets_.RootOf(bucket, fields->name, nullptr); !root.ok()) return ErrorResponse(root.status());
  std::string id = NewUploadId();
  {
    std::lock_guard lock(mu_);
    ExpireIdle();
    if (resumable_.size() >= kMaxResumableSessions) {
      return ErrorResponse(Status(StatusCode::kResourceExhausted,
                                  "Too many resumable uploads in progress; finish or cancel one, or retry later"));
    }
    auto file = buckets_.NewUploadFile(bucket);
    if (!file.ok()) return ErrorResponse(file.status());
    resumable_[id] = {bucket,
                      fields->name,
                      fields->content_type,
                      std::move(fields->metadata),
                      std::make_shared<BucketService::UploadFile>(*std::move(file)),
                      0,
                      std::chrono::steady_clock::now()};
  }
  std::string location = base_url_(req) + std::string(kUpload) + bucket + "/o?uploadType=resumable&upload_id=" + id;
  return HttpResponse{200, "", "", {{"Location", location}, {"X-GUploader-UploadID", id}}};
}

HttpResponse StorageApi::ContinueResumable(HttpRequest const& req, std::string const& upload_id) {
  std::unique_lock lock(mu_);
  ExpireIdle();
  auto it = resumable_.find(upload_id);
  if (it == resumable_.end()) {
    return ErrorResponse(NotFoundError("No such resumable upload (it finished, was cancelled, sat idle for 10 "
                                       "minutes, or Ferry restarted)"));
  }
  Resumable& upload = it->second;
  auto drop = [&] {
    BucketService::Discard(*upload.file);
    resumable_.erase(it);
  };
  if (req.method == "DELETE") {
    drop();
    return HttpResponse{499, "", "", {}};
  }
  if (req.method != "PUT" && req.method != "POST") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use PUT"), 405);
  ContentRange range;
  std::string header = req.Header("content-range");
  if (header.empty()) {  // the whole object in one request
    range.has_bytes = !req.body.empty();
    range.last = static_cast<int64_t>(req.body.size()) - 1;
    range.total = static_cast<int64_t>(req.body.size());
  } else {
    auto parsed = ParseContentRange(header);
    if (!parsed.ok()) return ErrorResponse(parsed.status());
    range = *parsed;
  }
  if (range.total > kMaxResumableBytes || range.last >= kMaxResumableBytes) {
    drop();
    return ErrorResponse(Status(StatusCode::kResourceExhausted,
                                "Ferry takes resumable uploads of up to " + std::to_string(kMaxResumableBytes) +
                                    " bytes"),
                         413);
  }
  if (range.has_bytes) {
    if (range.last - range.first + 1 != static_cast<int64_t>(req.body.size())) {
      return ErrorResponse(InvalidArgumentError("Content-Range does not match the body's " +
                                                std::to_string(req.body.size()) + " bytes"));
    }
    // A chunk sent again (its answer was lost) overlaps what is here: keep only what is new.
    if (range.first <= upload.have && range.last >= upload.have) {
      std::string_view fresh = std::string_view(req.body).substr(static_cast<std::size_t>(upload.have - range.first));
      while (!fresh.empty()) {
        ssize_t n = ::write(upload.file->fd.get(), fresh.data(), fresh.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          drop();
          return ErrorResponse(UnavailableError("cannot write the upload to disk"));
        }
        fresh.remove_prefix(static_cast<std::size_t>(n));
        upload.have += n;
      }
    }
  }
  upload.touched = std::chrono::steady_clock::now();
  int64_t have = upload.have;
  if (range.total >= 0 && have >= range.total) {
    Resumable done = std::move(upload);
    resumable_.erase(it);
    lock.unlock();
    if (have > range.total) {
      BucketService::Discard(*done.file);
      return ErrorResponse(InvalidArgumentError("More bytes than the upload's total"));
    }
    auto root = buckets_.RootOf(done.bucket, done.name, nullptr);
    if (!root.ok()) {
      BucketService::Discard(*done.file);
      return ErrorResponse(root.status());
    }
    auto object = buckets_.Install(done.bucket, done.name, *root, std::move(*done.file), done.content_type,
                                   std::move(done.metadata));
    if (!object.ok()) return ErrorResponse(object.status());
    return ObjectResponse(*object, base_url_(req));
  }
  // Incomplete: 308 with what the server has, as Cloud Storage answers.
  HttpResponse res{308, "", "", {}};
  if (have > 0) res.headers.emplace_back("Range", "bytes=0-" + std::to_string(have - 1));
  return res;
}

}  // namespace ferry
