#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferry/status.h"

namespace ferry {

// The request parsing of the Cloud Storage JSON API's uploads and downloads, apart from the API so that each
// parser can be tested and fuzzed alone (fuzz/upload_parsing_fuzz.cc). All take text from the network.

// A parameter of a header value: boundary in `multipart/related; boundary="abc"`.
std::string HeaderParam(std::string const& value, std::string const& param);

struct Part {
  std::string content_type;
  std::string body;
};
// The parts of a multipart/related body (RFC 2387), CRLF or bare-LF line ends; at most two (the JSON API's
// metadata and media), in one pass over the body.
StatusOr<std::vector<Part>> MultipartParts(std::string const& content_type, std::string const& body);

// A non-negative decimal number that fits int64: nullopt for anything else ("-5", "", "1e3", 20 digits).
std::optional<int64_t> Count(std::string_view text);

// Content-Range of a resumable upload's request: "bytes F-L/T", "bytes F-L/*", "bytes */T" or "bytes */*".
struct ContentRange {
  bool has_bytes = false;
  int64_t first = 0, last = -1;
  int64_t total = -1;  // unknown yet
};
StatusOr<ContentRange> ParseContentRange(std::string const& value);

// A download's Range header ("bytes=F-L", "bytes=F-" or "bytes=-N") against an object of `size` bytes: the first
// and last byte, within the object; OUT_OF_RANGE otherwise.
StatusOr<std::pair<int64_t, int64_t>> ParseRange(std::string const& value, int64_t size);

}  // namespace ferry
