#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "api/http_server.h"
#include "storage/bucket_service.h"

namespace ferry {

// The part of the Cloud Storage JSON API that Ferry's buckets serve, as Google's client libraries call it:
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}   simple media upload
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=multipart             metadata and bytes (multipart/related)
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=resumable             starts a resumable upload: Location
//                                                                           (also /resumable/upload/..., gcloud's)
//   PUT    /upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id=  its bytes, whole or in chunks
//   GET    /storage/v1/b[?project=]  and  /storage/v1/b/{bucket}            buckets
//   GET    /storage/v1/b/{bucket}/o[?prefix=&delimiter=]                    list
//   GET    /storage/v1/b/{bucket}/o/{object}[?alt=media]                    metadata, or the bytes (also under
//                                                                           /download/storage/v1/...)
//   PATCH  /storage/v1/b/{bucket}/o/{object}                                contentType and metadata
//   DELETE /storage/v1/b/{bucket}/o/{object}
// Resumable uploads in progress are kept in memory, up to 1 GiB each: a restart loses them, and the client starts
// again.
class StorageApi {
 public:
  explicit StorageApi(BucketService& buckets) : buckets_(buckets) {}
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);

 private:
  struct Resumable {
    std::string bucket, name, content_type;
    std::map<std::string, std::string> metadata;
    std::string bytes;  // received so far
    std::chrono::steady_clock::time_point touched;
  };

  HttpResponse Upload(HttpRequest const& request, std::string const& bucket);
  HttpResponse StartResumable(HttpRequest const& request, std::string const& bucket);
  HttpResponse ContinueResumable(HttpRequest const& request, std::string const& upload_id);
  HttpResponse Buckets(HttpRequest const& request, std::string_view rest);

  BucketService& buckets_;
  std::mutex mu_;
  std::map<std::string, Resumable> resumable_;  // GUARDED_BY(mu_): by upload id
};

}  // namespace ferry
