#include "api/storage/upload_parsing.h"

#include <algorithm>
#include <cctype>

namespace ferry {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

// A parameter of a header value: boundary in `multipart/related; boundary="abc"`.
std::string HeaderParam(std::string const& value, std::string const& param) {
  std::string lower = Lower(value);
  auto pos = lower.find(param + "=");
  if (pos == std::string::npos) return "";
  std::string v = value.substr(pos + param.size() + 1);
  v = v.substr(0, v.find(';'));
  // Quoted as RFC 2045 has it, or in single quotes as gcloud's apitools sends it.
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
  return v;
}

// The parts of a multipart/related body (RFC 2387), as the JSON API's multipart upload sends them, with CRLF
// line ends or, as gcloud sends them, bare LF. Hand-written: a split on the boundary; no Debian library parses
// MIME without a mail framework around it.
StatusOr<std::vector<Part>> MultipartParts(std::string const& content_type, std::string const& body) {
  std::string boundary = HeaderParam(content_type, "boundary");
  if (boundary.empty()) return InvalidArgumentError("A multipart upload needs Content-Type multipart/related with a boundary");
  std::string delimiter = "--" + boundary;
  std::string next_delimiter = "\n" + delimiter;
  auto bad = [] { return InvalidArgumentError("Malformed multipart body"); };
  std::string_view text = body;
  std::size_t pos = text.find(delimiter);
  if (pos == std::string_view::npos) return bad();
  pos += delimiter.size();
  std::vector<Part> parts;
  // Each search runs within one part (up to the next delimiter), and parts do not overlap, so the parse is linear
  // in the body; and the JSON API's upload has two parts, so a third ends it.
  while (text.compare(pos, 2, "--") != 0) {
    if (parts.size() == 2) return InvalidArgumentError("A multipart upload has two parts: metadata, media");
    if (text.compare(pos, 2, "\r\n") == 0) {
      pos += 2;
    } else if (text.compare(pos, 1, "\n") == 0) {
      pos += 1;
    }
    // The part ends where the next delimiter line begins; its headers end at its first blank line.
    auto next = text.find(next_delimiter, pos > 0 ? pos - 1 : 0);
    if (next == std::string_view::npos || next < pos - 1) return bad();
    std::string_view region = text.substr(pos, next + 1 > pos ? next + 1 - pos : 0);
    auto crlf = region.find("\r\n\r\n");
    auto lf = region.find("\n\n");
    if (crlf == std::string_view::npos && lf == std::string_view::npos) return bad();
    bool crlf_first = crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf);
    auto header_end = pos + (crlf_first ? crlf : lf);
    Part part;
    std::string_view headers = text.substr(pos, header_end - pos);
    for (std::size_t line_start = 0; line_start < headers.size();) {
      auto line_end = headers.find('\n', line_start);
      std::string line(headers.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                                      : line_end - line_start));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon != std::string::npos && Lower(line.substr(0, colon)) == "content-type") {
        auto value = line.find_first_not_of(' ', colon + 1);
        part.content_type = value == std::string::npos ? "" : line.substr(value);
      }
      if (line_end == std::string_view::npos) break;
      line_start = line_end + 1;
    }
    auto content = header_end + (crlf_first ? 4 : 2);
    if (content > next + 1) return bad();
    auto content_end = std::max(content, next);
    if (content_end > content && text[content_end - 1] == '\r') --content_end;
    part.body = std::string(text.substr(content, content_end - content));
    parts.push_back(std::move(part));
    pos = next + 1 + delimiter.size();
    if (pos > text.size()) return bad();
  }
  return parts;
}

// A non-negative decimal number that fits int64: nullopt for anything else ("-5", "", "1e3", 20 digits).
std::optional<int64_t> Count(std::string_view text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  return std::stoll(std::string(text));
}

StatusOr<ContentRange> ParseContentRange(std::string const& value) {
  ContentRange out;
  auto bad = [] { return InvalidArgumentError("Invalid Content-Range"); };
  if (value.rfind("bytes ", 0) != 0) return bad();
  std::string spec = value.substr(6);
  auto slash = spec.find('/');
  if (slash == std::string::npos) return bad();
  std::string range = spec.substr(0, slash), total = spec.substr(slash + 1);
  if (total != "*") {
    auto t = Count(total);
    if (!t) return bad();
    out.total = *t;
  }
  if (range != "*") {
    auto dash = range.find('-');
    if (dash == std::string::npos) return bad();
    auto first = Count(std::string_view(range).substr(0, dash));
    auto last = Count(std::string_view(range).substr(dash + 1));
    if (!first || !last || *last < *first) return bad();
    out.first = *first;
    out.last = *last;
    out.has_bytes = true;
  }
  return out;
}

// A download's Range header ("bytes=F-L", "bytes=F-" or "bytes=-N") against an object of `size` bytes: the
// first and last byte, within the object.
StatusOr<std::pair<int64_t, int64_t>> ParseRange(std::string const& value, int64_t size) {
  auto bad = [] { return Status(StatusCode::kOutOfRange, "Unsatisfiable Range"); };
  if (value.rfind("bytes=", 0) != 0 || value.find(',') != std::string::npos) return bad();
  std::string_view spec = std::string_view(value).substr(6);
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return bad();
  int64_t first = 0, last = size - 1;
  if (dash == 0) {  // the last N bytes
    auto n = Count(spec.substr(1));
    if (!n || *n == 0) return bad();
    first = std::max<int64_t>(0, size - *n);
  } else {
    auto f = Count(spec.substr(0, dash));
    if (!f) return bad();
    first = *f;
    if (dash + 1 < spec.size()) {
      auto l = Count(spec.substr(dash + 1));
      if (!l) return bad();
      last = std::min(last, *l);
    }
  }
  if (first < 0 || first >= size || last < first) return bad();
  return std::make_pair(first, last);
}

}  // namespace ferry
