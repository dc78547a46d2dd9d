#pragma once

#include <string_view>

#include "api/http_server.h"

namespace ferry {

// The web console: one page and its script and style, built into the binary, served under /console. It holds no
// data: the page reads and acts through the APIs (admin, Pub/Sub REST, storage) with the token the user logs in
// with, so each of its calls is checked against that token's roles like any client's (viewer reads, admin acts).
// Without tokens Ferry serves loopback only, and so does the console.
class Console {
 public:
  static bool Serves(std::string_view path) { return path == "/console" || path.rfind("/console/", 0) == 0; }
  // GET or HEAD of /console (the page, also for any path below it that is not an asset: the page routes by its
  // fragment) or /console/{asset}.
  static HttpResponse Handle(HttpRequest const& request);
};

}  // namespace ferry
