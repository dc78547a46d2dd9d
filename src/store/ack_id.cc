#include "store/ack_id.h"

#include <charconv>

namespace ferry {
namespace {

bool TakeNumber(std::string_view& s, int64_t& out, bool last) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr == s.data() || out <= 0) return false;
  s.remove_prefix(static_cast<std::size_t>(ptr - s.data()));
  if (last) return s.empty();
  if (s.empty() || s.front() != '-') return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::string EncodeAckId(AckRef const& ref) {
  std::string id = std::to_string(ref.subscription_id) + "-" + std::to_string(ref.message_id) + "-" +
                   std::to_string(ref.attempt);
  if (ref.seeks > 0) id += "-" + std::to_string(ref.seeks);  // so ack ids from before any seek keep their form
  return id;
}

std::optional<int64_t> DecodeMessageId(std::string_view id) {
  int64_t out = 0;
  if (!TakeNumber(id, out, true)) return std::nullopt;
  return out;
}

std::optional<AckRef> DecodeAckId(std::string_view ack_id) {
  AckRef ref;
  int64_t attempt = 0;
  if (!TakeNumber(ack_id, ref.subscription_id, false) || !TakeNumber(ack_id, ref.message_id, false)) {
    return std::nullopt;
  }
  bool const has_seeks = ack_id.find('-') != std::string_view::npos;
  if (!TakeNumber(ack_id, attempt, !has_seeks) || attempt > 1'000'000) return std::nullopt;
  if (has_seeks && !TakeNumber(ack_id, ref.seeks, true)) return std::nullopt;
  ref.attempt = static_cast<int>(attempt);
  return ref;
}

StatusOr<std::vector<AckRef>> DecodeAckIds(std::vector<std::string> const& ack_ids) {
  std::vector<AckRef> refs;
  refs.reserve(ack_ids.size());
  for (auto const& id : ack_ids) {
    auto ref = DecodeAckId(id);
    if (!ref) return InvalidArgumentError("Invalid ack id (ack_id=" + id + ")");
    refs.push_back(*ref);
  }
  return refs;
}

}  // namespace ferry
