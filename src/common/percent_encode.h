#pragma once

#include <string>
#include <string_view>

namespace ferry {

// RFC 3986 percent-encoding: every byte but letters, digits and "-_.~" becomes %XX.
std::string PercentEncode(std::string_view text);

}  // namespace ferry
