#pragma once

#include <string_view>

#include "api/http_server.h"
#include "storage/bucket_service.h"

namespace ferry {

// The part of the Cloud Storage JSON API that Ferry's buckets serve:
//   POST   /upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}   simple media upload
//   GET    /storage/v1/b/{bucket}/o[?prefix=]                               list
//   GET    /storage/v1/b/{bucket}/o/{object}[?alt=media]                    metadata, or the bytes
//   PATCH  /storage/v1/b/{bucket}/o/{object}                                contentType and metadata
//   DELETE /storage/v1/b/{bucket}/o/{object}
class StorageApi {
 public:
  explicit StorageApi(BucketService& buckets) : buckets_(buckets) {}
  static bool Serves(std::string_view path);
  HttpResponse Handle(HttpRequest const& request);

 private:
  BucketService& buckets_;
};

}  // namespace ferry
