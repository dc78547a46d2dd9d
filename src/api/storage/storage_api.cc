#include "api/storage/storage_api.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "common/percent_encode.h"

namespace ferry {
namespace {

constexpr std::string_view kUpload = "/upload/storage/v1/b/";
constexpr std::string_view kResumableUpload = "/resumable/upload/storage/v1/b/";  // gcloud's (apitools') path
constexpr std::string_view kDownload = "/download/storage/v1/b/";
constexpr std::string_view kBuckets = "/storage/v1/b";
constexpr auto kResumableIdle = std::chrono::hours(24);
// A resumable upload is held in memory until its last byte: bounded, so no client can exhaust it.
constexpr int64_t kMaxResumableBytes = int64_t{1} << 30;

HttpResponse JsonOf(std::string body) { return HttpResponse{200, "application/json", std::move(body), {}}; }

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// An object resource's writable fields from a JSON body ("" and {} when absent).
struct ObjectFields {
  std::string name, content_type;
  std::map<std::string, std::string> metadata;
};

StatusOr<ObjectFields> ParseObjectFields(std::string const& text) {
  ObjectFields out;
  if (text.empty()) return out;
  auto body = nlohmann::json::parse(text, nullptr, false);
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
      if (!v.is_string()) return InvalidArgumentError("metadata." + k + " must be a string");
      out.metadata[k] = v.get<std::string>();
    }
  }
  return out;
}

// A parameter of a header value: boundary in `multipart/related; boundary="abc"`.
std::string HeaderParam(std::string const& value, std::string const& param) {
  std::string lower = Lower(value);
  auto pos = lower.find(param + "=");
  if (pos == std::string::npos) return "";
  std::string v = value.substr(pos + param.size() + 1);
  v = v.substr(0, v.find(';'));
  // Quoted as RFC 2045 has it, or in single quotes as gcloud's apitools sends it.
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
  return v;
}

struct Part {
  std::string content_type;
  std::string body;
};

// The parts of a multipart/related body (RFC 2387), as the JSON API's multipart upload sends them, with CRLF
// line ends or, as gcloud sends them, bare LF. Hand-written: a split on the boundary; no Debian library parses
// MIME without a mail framework around it.
StatusOr<std::vector<Part>> MultipartParts(std::string const& content_type, std::string const& body) {
  std::string boundary = HeaderParam(content_type, "boundary");
  if (boundary.empty()) return InvalidArgumentError("A multipart upload needs Content-Type multipart/related with a boundary");
  std::string delimiter = "--" + boundary;
  auto bad = [] { return InvalidArgumentError("Malformed multipart body"); };
  std::size_t pos = body.find(delimiter);
  if (pos == std::string::npos) return bad();
  pos += delimiter.size();
  std::vector<Part> parts;
  while (body.compare(pos, 2, "--") != 0) {
    if (body.compare(pos, 2, "\r\n") == 0) {
      pos += 2;
    } else if (body.compare(pos, 1, "\n") == 0) {
      pos += 1;
    }
    auto crlf = body.find("\r\n\r\n", pos);
    auto lf = body.find("\n\n", pos);
    if (crlf == std::string::npos && lf == std::string::npos) return bad();
    bool crlf_first = crlf != std::string::npos && (lf == std::string::npos || crlf < lf);
    auto header_end = crlf_first ? crlf : lf;
    Part part;
    std::string headers = body.substr(pos, header_end - pos);
    for (std::size_t line_start = 0; line_start < headers.size();) {
      auto line_end = headers.find('\n', line_start);
      std::string line = headers.substr(line_start, line_end == std::string::npos ? std::string::npos : line_end - line_start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon != std::string::npos && Lower(line.substr(0, colon)) == "content-type") {
        auto value = line.find_first_not_of(' ', colon + 1);
        part.content_type = value == std::string::npos ? "" : line.substr(value);
      }
      if (line_end == std::string::npos) break;
      line_start = line_end + 1;
    }
    auto content = header_end + (crlf_first ? 4 : 2);
    auto next = body.find("\n" + delimiter, content > 0 ? content - 1 : 0);
    if (next == std::string::npos || next + 1 < content) return bad();
    auto content_end = next;
    if (content_end > content && body[content_end - 1] == '\r') --content_end;
    part.body = body.substr(content, content_end > content ? content_end - content : 0);
    parts.push_back(std::move(part));
    pos = next + 1 + delimiter.size();
    if (pos > body.size()) return bad();
  }
  return parts;
}

// Content-Range of a resumable upload's request: "bytes F-L/T", "bytes F-L/*", "bytes */T" or "bytes */*".
struct ContentRange {
  bool has_bytes = false;
  int64_t first = 0, last = -1;
  int64_t total = -1;  // unknown yet
};

StatusOr<ContentRange> ParseContentRange(std::string const& value) {
  ContentRange out;
  auto bad = [&] { return InvalidArgumentError("Invalid Content-Range \"" + value + "\""); };
  if (value.rfind("bytes ", 0) != 0) return bad();
  std::string spec = value.substr(6);
  auto slash = spec.find('/');
  if (slash == std::string::npos) return bad();
  std::string range = spec.substr(0, slash), total = spec.substr(slash + 1);
  try {
    if (total != "*") out.total = std::stoll(total);
    if (range != "*") {
      auto dash = range.find('-');
      if (dash == std::string::npos) return bad();
      out.first = std::stoll(range.substr(0, dash));
      out.last = std::stoll(range.substr(dash + 1));
      out.has_bytes = true;
      if (out.last < out.first) return bad();
    }
  } catch (std::exception const&) {
    return bad();
  }
  return out;
}

// A download's Range header ("bytes=F-L", "bytes=F-" or "bytes=-N") against an object of `size` bytes: the
// first and last byte, within the object.
StatusOr<std::pair<int64_t, int64_t>> ParseRange(std::string const& value, int64_t size) {
  auto bad = [&] { return Status(StatusCode::kOutOfRange, "Unsatisfiable Range \"" + value + "\""); };
  if (value.rfind("bytes=", 0) != 0 || value.find(',') != std::string::npos) return bad();
  std::string spec = value.substr(6);
  auto dash = spec.find('-');
  if (dash == std::string::npos) return bad();
  int64_t first = 0, last = size - 1;
  try {
    if (dash == 0) {  // the last N bytes
      first = std::max<int64_t>(0, size - static_cast<int64_t>(std::stoll(spec.substr(1))));
    } else {
      first = std::stoll(spec.substr(0, dash));
      if (dash + 1 < spec.size()) last = std::min<int64_t>(last, std::stoll(spec.substr(dash + 1)));
    }
  } catch (std::exception const&) {
    return bad();
  }
  if (first < 0 || first >= size || last < first) return bad();
  return std::make_pair(first, last);
}

std::string NewUploadId() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) id += kHex[random() & 15];
  return id;
}

// Where this server is, as the client reached it: links in answers point back here.
std::string BaseUrl(HttpRequest const& req) {
  std::string host = req.Header("host");
  return "http://" + (host.empty() ? std::string("127.0.0.1") : host);
}

// The object resource with its links, as the API answers it (gcloud downloads from mediaLink).
nlohmann::json ObjectJson(ObjectInfo const& o, HttpRequest const& req) {
  auto j = nlohmann::json::parse(o.ToJson());
  std::string path = "/storage/v1/b/" + o.bucket + "/o/" + PercentEncode(o.name);
  j["selfLink"] = BaseUrl(req) + path;
  j["mediaLink"] = BaseUrl(req) + "/download" + path + "?generation=" + std::to_string(o.generation) + "&alt=media";
  return j;
}

HttpResponse ObjectResponse(ObjectInfo const& o, HttpRequest const& req) { return JsonOf(ObjectJson(o, req).dump()); }

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
      items.push_back(ObjectJson(o, req));
    }
    nlohmann::json out{{"kind", "storage#objects"}};
    if (!items.empty()) out["items"] = std::move(items);
    if (!prefixes.empty()) out["prefixes"] = prefixes;
    return JsonOf(out.dump());
  }
  if (rest[0] != '/' || rest.size() == 1) return ErrorResponse(NotFoundError("No such path: " + req.path));
  std::string name(rest.substr(1));
  if (req.method == "GET") {
    auto object = buckets_.Get(bucket, name);
    if (!object.ok()) return ErrorResponse(object.status());
    if (download || req.Query("alt") == "media") {
      auto bytes = buckets_.Read(bucket, name);
      if (!bytes.ok()) return ErrorResponse(bytes.status());
      HttpResponse res{200, object->content_type, *std::move(bytes),
                       {{"x-goog-generation", std::to_string(object->generation)},
                        {"x-goog-hash", "crc32c=" + object->crc32c + ",md5=" + object->md5_hash}}};
      if (std::string range = req.Header("range"); !range.empty()) {  // sliced downloads ask for byte ranges
        auto slice = ParseRange(range, static_cast<int64_t>(res.body.size()));
        if (!slice.ok()) return ErrorResponse(slice.status(), 416);
        auto [first, last] = *slice;
        res.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
                                                      "/" + std::to_string(res.body.size()));
        res.body = res.body.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(last - first + 1));
        res.status = 206;
      }
      return res;
    }
    return ObjectResponse(*object, req);
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
    return ObjectResponse(*object, req);
  }
  return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET, PATCH or DELETE"), 405);
}

HttpResponse StorageApi::Buckets(HttpRequest const& req, std::string_view name) {
  if (req.method != "GET") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET"), 405);
  if (!name.empty()) {
    auto bucket = buckets_.Bucket(std::string(name));
    if (!bucket.ok()) return ErrorResponse(bucket.status());
    return JsonOf(BucketJson(*bucket).dump());
  }
  std::string project = req.Query("project");
  nlohmann::json items = nlohmann::json::array();
  for (auto const& b : buckets_.Buckets()) {
    if (project.empty() || b.project == project) items.push_back(BucketJson(b));
  }
  nlohmann::json out{{"kind", "storage#buckets"}};
  if (!items.empty()) out["items"] = std::move(items);
  return JsonOf(out.dump());
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
  return ObjectResponse(*object, req);
}

HttpResponse StorageApi::StartResumable(HttpRequest const& req, std::string const& bucket) {
  auto fields = ParseObjectFields(req.body);
  if (!fields.ok()) return ErrorResponse(fields.status());
  if (!req.Query("name").empty()) fields->name = req.Query("name");
  if (fields->name.empty()) return ErrorResponse(InvalidArgumentError("Required parameter: name"));
  if (fields->content_type.empty()) fields->content_type = req.Header("x-upload-content-type");
  if (auto b = buckets_.Bucket(bucket); !b.ok()) return ErrorResponse(b.status());
  std::string id = NewUploadId();
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    std::erase_if(resumable_, [&](auto const& u) { return now - u.second.touched > kResumableIdle; });
    resumable_[id] = {bucket, fields->name, fields->content_type, std::move(fields->metadata), "", now};
  }
  std::string location = BaseUrl(req) + std::string(kUpload) + bucket + "/o?uploadType=resumable&upload_id=" + id;
  return HttpResponse{200, "", "", {{"Location", location}, {"X-GUploader-UploadID", id}}};
}

HttpResponse StorageApi::ContinueResumable(HttpRequest const& req, std::string const& upload_id) {
  std::unique_lock lock(mu_);
  auto it = resumable_.find(upload_id);
  if (it == resumable_.end()) {
    return ErrorResponse(NotFoundError("No such resumable upload (it finished, was cancelled or Ferry restarted)"));
  }
  Resumable& upload = it->second;
  if (req.method == "DELETE") {
    resumable_.erase(it);
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
  auto have = static_cast<int64_t>(upload.bytes.size());
  if (range.total > kMaxResumableBytes || range.last >= kMaxResumableBytes) {
    resumable_.erase(it);
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
    if (range.first <= have && range.last >= have) upload.bytes.append(req.body, static_cast<std::size_t>(have - range.first));
  }
  upload.touched = std::chrono::steady_clock::now();
  have = static_cast<int64_t>(upload.bytes.size());
  if (range.total >= 0 && have >= range.total) {
    Resumable done = std::move(upload);
    resumable_.erase(it);
    lock.unlock();
    if (have > range.total) return ErrorResponse(InvalidArgumentError("More bytes than the upload's total"));
    auto object = buckets_.Put(done.bucket, done.name, done.bytes, done.content_type, std::move(done.metadata));
    if (!object.ok()) return ErrorResponse(object.status());
    return ObjectResponse(*object, req);
  }
  // Incomplete: 308 with what the server has, as Cloud Storage answers.
  HttpResponse res{308, "", "", {}};
  if (have > 0) res.headers.emplace_back("Range", "bytes=0-" + std::to_string(have - 1));
  return res;
}

}  // namespace ferry
