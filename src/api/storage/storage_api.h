#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
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
// Resumable uploads in progress are spooled to a hidden file in the bucket's directory, renamed into place when
// whole. Bounded: at most kMaxResumableSessions at once (429 past it), kMaxResumableBytes each (413), and a session
// idle for kResumableIdle is dropped with its file. A restart loses them, and the client starts again.
class StorageApi {
 public:
  // `base_url` gives the scheme and authority that links in answers (Location, selfLink, mediaLink) point at; it
  // must not simply echo the request's Host, or a client could make Ferry hand out links to another server.
  using BaseUrl = std::function<std::string(HttpRequest const&)>;
  StorageApi(BucketService& buckets, BaseUrl base_url) : buckets_(buckets), base_url_(std::move(base_url)) {}
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);

 private:
  struct Resumable {
    std::string bucket, name, content_type;
    std::map<std::string, std::string> metadata;
    std::shared_ptr<BucketService::UploadFile> file;
    int64_t have = 0;  // bytes received so far
    std::chrono::steady_clock::time_point touched;
  };
  // Holds mu_: drops sessions idle too long, with their files.
  void ExpireIdle();

  HttpResponse Upload(HttpRequest const& request, std::string const& bucket);
  HttpResponse StartResumable(HttpRequest const& request, std::string const& bucket);
  HttpResponse ContinueResumable(HttpRequest const& request, std::string const& upload_id);
  HttpResponse Buckets(HttpRequest const& request, std::string_view rest);

  BucketService& buckets_;
  BaseUrl base_url_;
  std::mutex mu_;
  std::map<std::string, Resumable> resumable_;  // GUARDED_BY(mu_): by upload id
};

}  // namespace ferry
