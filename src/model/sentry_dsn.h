#pragma once

#include <string>
#include <string_view>

#include "ferry/status.h"

namespace ferry {

// A Sentry DSN, "{scheme}://{public_key}[:{secret}]@{host}[:{port}][/{path}]/{project_id}", as Sentry documents it
// (develop.sentry.dev, "SDK: Overview"). Reports go to {scheme}://{host}:{port}{path}/api/{project_id}/envelope/.
struct SentryDsn {
  std::string dsn;  // as given
  std::string scheme, public_key, host, port, path, project_id;

  [[nodiscard]] std::string Endpoint() const { return scheme + "://" + host + ":" + port; }
  [[nodiscard]] std::string EnvelopePath() const { return path + "/api/" + project_id + "/envelope/"; }
  [[nodiscard]] std::string AuthHeader() const;  // X-Sentry-Auth
};

// INVALID_ARGUMENT naming what is wrong. Checks shape only (http or https, a key, a host, a numeric project id).
StatusOr<SentryDsn> ParseSentryDsn(std::string_view dsn);

}  // namespace ferry
