#include "model/sentry_dsn.h"

#include <algorithm>
#include <cctype>

namespace ferry {
namespace {

constexpr char kClient[] = "ferry/0.1.0";

bool AllOf(std::string_view s, bool (*ok)(char)) { return !s.empty() && std::all_of(s.begin(), s.end(), ok); }
bool KeyChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }
bool HostChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.'; }
bool Ipv6Char(char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'; }
bool DigitChar(char c) { return std::isdigit(static_cast<unsigned char>(c)); }
bool PathChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~';
}

}  // namespace

std::string SentryDsn::AuthHeader() const {
  return "Sentry sentry_version=7, sentry_key=" + public_key + ", sentry_client=" + kClient;
}

StatusOr<SentryDsn> ParseSentryDsn(std::string_view text) {
  auto bad = [&](std::string const& why) {
    return InvalidArgumentError("sentry DSN must be http(s)://KEY@HOST[:PORT]/PROJECT_ID: " + why);
  };
  if (text.size() > 2048) return bad("it is longer than 2048 characters");
  SentryDsn d;
  d.dsn = std::string(text);
  auto sep = text.find("://");
  if (sep == std::string_view::npos) return bad("no scheme");
  d.scheme = std::string(text.substr(0, sep));
  if (d.scheme != "http" && d.scheme != "https") return bad("the scheme is not http or https");
  std::string_view rest = text.substr(sep + 3);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("no project id");
  std::string_view authority = rest.substr(0, slash), path = rest.substr(slash);
  auto at = authority.rfind('@');
  if (at == std::string_view::npos) return bad("no public key");
  std::string_view userinfo = authority.substr(0, at), hostport = authority.substr(at + 1);
  d.public_key = std::string(userinfo.substr(0, userinfo.find(':')));
  if (!AllOf(d.public_key, KeyChar)) return bad("the public key is empty or not letters and digits");
  if (!hostport.empty() && hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos || !AllOf(hostport.substr(1, close - 1), Ipv6Char)) return bad("bad host");
    d.host = std::string(hostport.substr(0, close + 1));
    hostport.remove_prefix(close + 1);
  } else {
    d.host = std::string(hostport.substr(0, hostport.find(':')));
    if (!AllOf(d.host, HostChar)) return bad("bad host");
    hostport.remove_prefix(d.host.size());
  }
  if (!hostport.empty()) {
    if (hostport.front() != ':' || !AllOf(hostport.substr(1), DigitChar) || hostport.size() > 6) {
      return bad("bad port");
    }
    d.port = std::string(hostport.substr(1));
    if (std::stoi(d.port) == 0 || std::stoi(d.port) > 65535) return bad("bad port");
  } else {
    d.port = d.scheme == "https" ? "443" : "80";
  }
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto last = path.rfind('/');
  d.project_id = std::string(path.substr(last + 1));
  if (!AllOf(d.project_id, DigitChar)) return bad("the project id is not a number");
  d.path = std::string(path.substr(0, last));
  if (!d.path.empty() && !AllOf(d.path, PathChar)) return bad("bad path");
  return d;
}

}  // namespace ferry
