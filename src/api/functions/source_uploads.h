#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// The zips gcloud functions deploy uploads (Cloud Functions' generateUploadUrl): each upload URL names a fresh
// random id (128 bits from the kernel), and that id is the permission to upload to it, as Google's signed URL is. An id
// takes one upload, within 30 minutes; a create or patch then takes the zip once. At most 64 wait at a time, each
// at most 100 MiB (the server's limit for these uploads), kept as files in `dir` until taken or expired.
class SourceUploads {
 public:
  static constexpr std::size_t kMaxBytes = 100 << 20;  // x-goog-content-length-range: 0,104857600
  static constexpr std::size_t kMaxPending = 64;
  static constexpr std::chrono::minutes kLifetime{30};

  explicit SourceUploads(std::string dir) : dir_(std::move(dir)) {}
  // A new upload id. RESOURCE_EXHAUSTED when kMaxPending wait already.
  StatusOr<std::string> Create();
  // The zip for `id` (from the upload URL's path). NOT_FOUND for an id not handed out, used or expired.
  Status Put(std::string_view id, std::string_view bytes);
  // The uploaded zip's bytes for an upload URL that Create handed out and Put filled; the upload is gone after.
  StatusOr<std::string> Take(std::string_view upload_url);
  // Whether `id` waits for its upload (handed out, not yet uploaded, not expired).
  bool Waiting(std::string_view id);
  // The id in an upload URL ("{base}/upload/functions/{id}.zip?..."), or "" if it is not one.
  static std::string IdOf(std::string_view url);

 private:
  struct Pending {
    std::chrono::steady_clock::time_point expires;
    enum { kWaiting, kWriting, kReady } state = kWaiting;
  };
  void DropExpired();  // with mu_ held
  std::string PathOf(std::string_view id) const { return dir_ + "/" + std::string(id) + ".zip"; }

  std::string const dir_;
  std::mutex mu_;
  std::map<std::string, Pending, std::less<>> pending_;  // GUARDED_BY(mu_)
};

}  // namespace ferry
