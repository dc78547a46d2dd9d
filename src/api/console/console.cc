#include "api/console/console.h"

#include <string>

#include "api/console/console_assets.h"

namespace ferry {
namespace {

std::string_view ContentType(std::string_view path) {
  auto ends = [&](std::string_view s) { return path.size() >= s.size() && path.substr(path.size() - s.size()) == s; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace

HttpResponse Console::Handle(HttpRequest const& req) {
  if (req.method != "GET" && req.method != "HEAD") {
    auto res = ErrorResponse(Status(StatusCode::kUnimplemented, "The console is read with GET"), 405);
    res.headers.emplace_back("Allow", "GET, HEAD");
    return res;
  }
  std::string_view path = req.path;
  path.remove_prefix(std::string_view("/console").size());
  if (!path.empty()) path.remove_prefix(1);
  std::string_view name = path.empty() ? "index.html" : path;
  ConsoleAsset const* found = nullptr;
  ConsoleAsset const* index = nullptr;
  for (auto const& asset : ConsoleAssets()) {
    if (asset.path == name) found = &asset;
    if (asset.path == "index.html") index = &asset;
  }
  if (found == nullptr) found = index;
  if (found == nullptr) return ErrorResponse(NotFoundError("Not found: " + req.path));
  HttpResponse res{200, std::string(ContentType(found->path)), req.method == "HEAD" ? "" : std::string(found->bytes), {}};
  // Only what the binary serves runs in the page; it cannot be framed; nothing is cached past a restart (an upgrade
  // brings new assets under the same names).
  res.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  res.headers.emplace_back("Cache-Control", "no-cache");
  return res;
}

}  // namespace ferry
