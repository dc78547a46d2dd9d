#pragma once

#include <string>

#include "ferry/status.h"
#include "model/json_codec.h"
#include "model/resources.h"

namespace ferry {

// How every backend stores resources and attributes: JSON text, in Pub/Sub's own JSON form for topics and
// subscriptions. Reading back, a corrupt value is INTERNAL.
StatusOr<Json> ParseStoredJson(std::string const& text);
StatusOr<Subscription> DecodeSub(std::string const& text);
StatusOr<Topic> DecodeTopic(std::string const& text);
std::string EncodeAttributes(Attributes const& attrs);
StatusOr<Attributes> DecodeAttributes(std::string const& text);

}  // namespace ferry
