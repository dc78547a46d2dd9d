#include "api/functions/source_uploads.h"


#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/random_hex.h"

namespace ferry {

StatusOr<std::string> SourceUploads::Create() {
  std::string id = RandomHex(16);
  std::lock_guard lock(mu_);
  DropExpired();
  if (pending_.size() >= kMaxPending) {
    return Status(StatusCode::kResourceExhausted, "too many source uploads waiting to be deployed; retry later");
  }
  pending_[id] = {std::chrono::steady_clock::now() + kLifetime};
  return id;
}

Status SourceUploads::Put(std::string_view id, std::string_view bytes) {
  {
    std::lock_guard lock(mu_);
    DropExpired();
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.state != Pending::kWaiting) {
      return NotFoundError("No upload is expected at this URL (it was used, or it expired): ask for a new one");
    }
    it->second.state = Pending::kWriting;  // one upload per id
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  std::string path = PathOf(id), tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::filesystem::remove(tmp, ec);
    std::lock_guard lock(mu_);
    pending_.erase(std::string(id));
    return InternalError("cannot store the upload in " + dir_);
  }
  std::lock_guard lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return NotFoundError("The upload expired while it was written: upload it again");
  it->second.state = Pending::kReady;
  return OkStatus();
}

StatusOr<std::string> SourceUploads::Take(std::string_view upload_url) {
  std::string id = IdOf(upload_url);
  {
    std::lock_guard lock(mu_);
    DropExpired();
    auto it = id.empty() ? pending_.end() : pending_.find(id);
    if (it == pending_.end() || it->second.state != Pending::kReady) {
      return InvalidArgumentError("sourceUploadUrl is not an upload this Ferry handed out and received (or it was "
                                  "deployed already, or it expired): upload the source again");
    }
    pending_.erase(it);
  }
  std::string path = PathOf(id);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bool ok = static_cast<bool>(in) || in.eof();
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (!ok) return InternalError("cannot read the upload " + path);
  return bytes;
}

bool SourceUploads::Waiting(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(id);
  return it != pending_.end() && it->second.state == Pending::kWaiting &&
         it->second.expires > std::chrono::steady_clock::now();
}

std::string SourceUploads::IdOf(std::string_view url) {
  constexpr std::string_view kPrefix = "/upload/functions/";
  auto at = url.find(kPrefix);
  if (at == std::string_view::npos) return "";
  std::string_view rest = url.substr(at + kPrefix.size());
  rest = rest.substr(0, rest.find_first_of("?#"));
  if (rest.size() != 36 || rest.substr(32) != ".zip") return "";
  rest = rest.substr(0, 32);
  if (rest.find_first_not_of("0123456789abcdef") != std::string_view::npos) return "";
  return std::string(rest);
}

void SourceUploads::DropExpired() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    std::error_code ec;
    std::filesystem::remove(PathOf(it->first), ec);
    it = pending_.erase(it);
  }
}

}  // namespace ferry
