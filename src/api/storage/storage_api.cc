#include "api/storage/storage_api.h"

#include <nlohmann/json.hpp>

namespace ferry {
namespace {

constexpr std::string_view kUpload = "/upload/storage/v1/b/";
constexpr std::string_view kObjects = "/storage/v1/b/";

HttpResponse JsonOf(std::string body) { return HttpResponse{200, "application/json", std::move(body), {}}; }

}  // namespace

bool StorageApi::Serves(std::string_view path) {
  return path.rfind(kUpload, 0) == 0 || path.rfind(kObjects, 0) == 0;
}

HttpResponse StorageApi::Handle(HttpRequest const& req) {
  bool upload = req.path.rfind(kUpload, 0) == 0;
  std::string_view rest = std::string_view(req.path).substr(upload ? kUpload.size() : kObjects.size());
  auto slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (bucket.empty() || rest.rfind("/o", 0) != 0) return ErrorResponse(NotFoundError("No such path: " + req.path));
  rest.remove_prefix(2);

  if (upload) {
    if (req.method != "POST") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use POST"), 405);
    if (!rest.empty()) return ErrorResponse(NotFoundError("No such path: " + req.path));
    std::string type = req.Query("uploadType");
    if (type != "media") {
      return ErrorResponse(InvalidArgumentError("Ferry supports uploadType=media (simple upload), not \"" + type + "\""));
    }
    std::string name = req.Query("name");
    if (name.empty()) return ErrorResponse(InvalidArgumentError("Required parameter: name"));
    auto object = buckets_.Put(bucket, name, req.body, req.Header("content-type"));
    if (!object.ok()) return ErrorResponse(object.status());
    return JsonOf(object->ToJson());
  }

  if (rest.empty()) {  // the bucket's objects
    if (req.method != "GET") return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET"), 405);
    auto list = buckets_.List(bucket, req.Query("prefix"));
    if (!list.ok()) return ErrorResponse(list.status());
    nlohmann::json items = nlohmann::json::array();
    for (auto const& o : *list) items.push_back(nlohmann::json::parse(o.ToJson()));
    nlohmann::json out{{"kind", "storage#objects"}};
    if (!items.empty()) out["items"] = std::move(items);
    return JsonOf(out.dump());
  }
  if (rest[0] != '/' || rest.size() == 1) return ErrorResponse(NotFoundError("No such path: " + req.path));
  std::string name(rest.substr(1));
  if (req.method == "GET") {
    if (req.Query("alt") == "media") {
      auto object = buckets_.Get(bucket, name);
      if (!object.ok()) return ErrorResponse(object.status());
      auto bytes = buckets_.Read(bucket, name);
      if (!bytes.ok()) return ErrorResponse(bytes.status());
      return HttpResponse{200, object->content_type, *std::move(bytes),
                          {{"x-goog-generation", std::to_string(object->generation)}}};
    }
    auto object = buckets_.Get(bucket, name);
    if (!object.ok()) return ErrorResponse(object.status());
    return JsonOf(object->ToJson());
  }
  if (req.method == "DELETE") {
    Status st = buckets_.Delete(bucket, name);
    if (!st.ok()) return ErrorResponse(st);
    return HttpResponse{204, "", "", {}};
  }
  if (req.method == "PATCH") {
    auto body = nlohmann::json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
    if (!body.is_object()) return ErrorResponse(InvalidArgumentError("Invalid JSON payload received"));
    std::map<std::string, std::string> metadata;
    if (body.contains("metadata")) {
      if (!body["metadata"].is_object()) return ErrorResponse(InvalidArgumentError("metadata must be an object"));
      for (auto const& [k, v] : body["metadata"].items()) {
        if (!v.is_string()) return ErrorResponse(InvalidArgumentError("metadata." + k + " must be a string"));
        metadata[k] = v.get<std::string>();
      }
    }
    std::string type = body.value("contentType", "");
    auto object = buckets_.UpdateMetadata(bucket, name, type, std::move(metadata));
    if (!object.ok()) return ErrorResponse(object.status());
    return JsonOf(object->ToJson());
  }
  return ErrorResponse(Status(StatusCode::kUnimplemented, "Use GET, PATCH or DELETE"), 405);
}

}  // namespace ferry
