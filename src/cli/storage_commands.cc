// `ferry cp`: files into buckets and objects out of them, over the Cloud Storage JSON API.
#include <algorithm>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "common/status_macros.h"
#include "common/percent_encode.h"

namespace ferry {
namespace {

struct CopyState {
  std::string cp_from, cp_to, cp_type;
};

// An upload's failure, in the server's own words when it gave them.
Status UploadFailed(HttpResult const& res) {
  auto body = Json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    return Status(StatusCode::kUnknown, "upload failed: " + body["error"].value("message", res.body));
  }
  return Status(StatusCode::kUnknown, "upload failed: HTTP " + std::to_string(res.status) + ": " + res.body);
}

}  // namespace

void AddStorageCommands(CLI::App& app, Cli& cli, Runner const& run) {
  auto st = std::make_shared<CopyState>();
  // ---- cp ----
  auto* cp = app.add_subcommand("cp", "Copy a file into a bucket (gs://BUCKET/OBJECT) or an object out of one");
  cp->add_option("FROM", st->cp_from, "A local file or gs://BUCKET/OBJECT")->required();
  cp->add_option("TO", st->cp_to, "gs://BUCKET/OBJECT or a local file")->required();
  cp->add_option("--content-type", st->cp_type, "The object's content type (default: from its name)");
  cp->callback(run([&cli, st]() -> Status {
    auto split = [](std::string const& url) -> StatusOr<std::pair<std::string, std::string>> {
      std::string rest = url.substr(5);
      auto slash = rest.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
        return InvalidArgumentError("expected gs://BUCKET/OBJECT, got \"" + url + "\"");
      }
      return std::pair{rest.substr(0, slash), rest.substr(slash + 1)};
    };
    bool upload = st->cp_to.rfind("gs://", 0) == 0;
    bool download = st->cp_from.rfind("gs://", 0) == 0;
    if (upload == download) return InvalidArgumentError("one of FROM and TO must be gs://BUCKET/OBJECT");
    if (upload) {
      FERRY_ASSIGN_OR_RETURN(auto target, split(st->cp_to));
      std::ifstream in(st->cp_from, std::ios::binary | std::ios::ate);
      if (!in) return NotFoundError("cannot read " + st->cp_from);
      auto const total = static_cast<int64_t>(in.tellg());
      in.seekg(0);
      // A resumable upload in chunks, as gcloud does for large files: any size goes, one chunk in memory at a
      // time, and the server's limits answer in its own words.
      Json meta = Json::object();
      if (!st->cp_type.empty()) meta["contentType"] = st->cp_type;
      FERRY_ASSIGN_OR_RETURN(auto started, cli.Raw("POST", "/upload/storage/v1/b/" + target.first +
                                                               "/o?uploadType=resumable&name=" + PercentEncode(target.second),
                                                   meta.dump(), "application/json"));
      if (started.status != 200) return UploadFailed(started);
      std::string id = started.Header("x-guploader-uploadid");
      if (id.empty()) return UnavailableError("the server gave no upload id");
      std::string path = "/upload/storage/v1/b/" + target.first + "/o?uploadType=resumable&upload_id=" + id;
      constexpr int64_t kChunk = 8 << 20;
      std::string chunk;
      int64_t sent = 0;
      do {
        chunk.resize(static_cast<std::size_t>(std::min(kChunk, total - sent)));
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        if (!in) return UnavailableError("cannot read " + st->cp_from);
        std::string range = chunk.empty() ? "bytes */" + std::to_string(total)
                                          : "bytes " + std::to_string(sent) + "-" +
                                                std::to_string(sent + static_cast<int64_t>(chunk.size()) - 1) + "/" +
                                                std::to_string(total);
        FERRY_ASSIGN_OR_RETURN(auto res, cli.Raw("PUT", path, chunk, "application/octet-stream",
                                                 {{"Content-Range", range}}));
        sent += static_cast<int64_t>(chunk.size());
        if (sent < total && res.status != 308) return UploadFailed(res);
        if (sent >= total && res.status != 200) return UploadFailed(res);
      } while (sent < total);
      std::cerr << "Copied " << st->cp_from << " to " << st->cp_to << " (" << total << " bytes).\n";
      return OkStatus();
    }
    FERRY_ASSIGN_OR_RETURN(auto source, split(st->cp_from));
    FERRY_ASSIGN_OR_RETURN(auto res, cli.Raw("GET", "/storage/v1/b/" + source.first + "/o/" + PercentEncode(source.second) +
                                                        "?alt=media", "", ""));
    if (res.status != 200) return NotFoundError("no object " + st->cp_from + " (HTTP " + std::to_string(res.status) + ")");
    std::ofstream out(st->cp_to, std::ios::binary | std::ios::trunc);
    out << res.body;
    if (!out) return UnavailableError("cannot write " + st->cp_to);
    return OkStatus();
  }));
}

}  // namespace ferry
